"""Few-shot keypoint model: keypoint prototypes and target distances (ALGORITHM.md §3).

From a handful of labelled shapes we build, for every semantic id that occurs in them,

* a prototype feature: the mean of the back-projected features at the annotated point, over
  the labelled shapes where the id occurs;
* a target distance to every other semantic id: the normalised geodesic distance between the
  two annotated points, averaged per pair over the shapes that contain both ids
  (``reduction="mean"``, the correct default) or summed over them (``reduction="sum"``, what
  the authors' code does; kept as a flag for parity with the paper's numbers).

A semantic id annotated more than once on one shape (KeypointNet has a few such records)
counts once for that shape: its feature is the mean of the features at its points, and its
distance to another id is the mean of the distances between their points.
Pairs that never occur together keep a target distance of 0, which the optimiser's mask
``D_kp > 0`` excludes, as does the zero diagonal.

:func:`labelled_shape` takes a labelled shape's keypoint features from its smoothed point
features (``"points"``, default) or as the authors' code does (``"annotated_xyz"``: the view
averages at the keypoints, smoothed among the keypoints only, :func:`keypoint_only_features`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bt3d.cache import load_arrays, save_arrays
from bt3d.errors import CacheError, ConfigError, DataError

REDUCTIONS = ("mean", "sum")
_PROTOTYPE_ARRAYS = (
    "semantic_ids",
    "features",
    "target_distances",
    "pair_counts",
    "shot_ids",
    "reduction",
)


@dataclass(frozen=True)
class LabelledShape:
    """One labelled (support) shape.

    Attributes:
        features: (N, C) back-projected point features.
        geodesic_normalised: (N, N) geodesic distances divided by their maximum.
        semantic_ids: (K_i,) semantic id of each annotated keypoint.
        point_indices: (K_i,) index of each keypoint in the point cloud.
        model_id: shape id, used in error messages.
    """

    features: np.ndarray
    geodesic_normalised: np.ndarray
    semantic_ids: np.ndarray
    point_indices: np.ndarray
    model_id: str = ""


@dataclass(frozen=True)
class KeypointPrototypes:
    """The few-shot keypoint model of one category.

    Attributes:
        semantic_ids: (K,) int64 sorted semantic ids seen in the labelled shapes.
        features: (K, C) float32 prototype feature of each id.
        target_distances: (K, K) float64 target normalised geodesic distance of each pair.
        pair_counts: (K, K) int64 number of labelled shapes containing both ids (diagonal:
            shapes containing the id).
        shot_ids: model ids of the labelled shapes, in input order.
        reduction: ``"mean"`` or ``"sum"``, how ``target_distances`` was reduced.
    """

    semantic_ids: np.ndarray
    features: np.ndarray
    target_distances: np.ndarray
    pair_counts: np.ndarray
    shot_ids: list[str] = field(default_factory=list)
    reduction: str = "mean"

    @property
    def num_keypoints(self) -> int:
        return len(self.semantic_ids)

    def save(self, path: str | os.PathLike, header: Mapping[str, Any] | None = None) -> Path:
        """Write the prototypes to ``path`` (``.npz``) atomically and sealed.

        ``header`` (JSON-serialisable) is stored too and checked by :meth:`load`; the file
        is a :func:`bt3d.cache.save_arrays` artifact (format version, content checksum).
        """
        arrays = {
            "semantic_ids": np.asarray(self.semantic_ids),
            "features": np.asarray(self.features),
            "target_distances": np.asarray(self.target_distances),
            "pair_counts": np.asarray(self.pair_counts),
            "shot_ids": np.asarray(self.shot_ids, dtype=str),
            "reduction": np.asarray(self.reduction),
        }
        return save_arrays(path, arrays, dict(header or {}))

    @staticmethod
    def read_header(path: str | os.PathLike) -> dict[str, Any]:
        """The header stored by :meth:`save` (the file checked as by :meth:`load`).

        Raises:
            CacheError: the file is missing, not a readable npz, stale or altered.
        """
        return load_arrays(path)[1]

    @classmethod
    def load(
        cls, path: str | os.PathLike, expected: Mapping[str, Any] | None = None
    ) -> KeypointPrototypes:
        """Read prototypes written by :meth:`save`; ``expected`` header fields must match.

        Raises:
            CacheError: the file is missing, truncated, not an npz, stale, altered since it
                was written (checksum), lacks a field, or its header differs from ``expected``.
        """
        arrays, _ = load_arrays(path, expected)
        lacking = [name for name in _PROTOTYPE_ARRAYS if name not in arrays]
        if lacking:
            raise CacheError(f"{path}: cannot read keypoint prototypes: no arrays {lacking}")
        return cls(
            semantic_ids=arrays["semantic_ids"].astype(np.int64),
            features=arrays["features"].astype(np.float32),
            target_distances=arrays["target_distances"].astype(np.float64),
            pair_counts=arrays["pair_counts"].astype(np.int64),
            shot_ids=[str(s) for s in arrays["shot_ids"]],
            reduction=str(arrays["reduction"]),
        )


def _checked(shape: LabelledShape, channels: int | None) -> tuple[np.ndarray, ...]:
    """Validate one labelled shape; return (features, geodesic, semantic_ids, point_indices)."""
    name = f"labelled shape {shape.model_id or '<unnamed>'}"
    f = np.asarray(shape.features)
    d = np.asarray(shape.geodesic_normalised)
    ids = np.asarray(shape.semantic_ids).reshape(-1)
    idx = np.asarray(shape.point_indices).reshape(-1)
    if f.ndim != 2 or f.shape[0] == 0:
        raise DataError(f"{name}: features must be a non-empty (N, C) array, got {f.shape}")
    n = f.shape[0]
    if channels is not None and f.shape[1] != channels:
        raise DataError(
            f"{name}: features have {f.shape[1]} channels, the other labelled shapes {channels}"
        )
    if d.shape != (n, n):
        raise DataError(f"{name}: geodesic_normalised must be ({n}, {n}), got {d.shape}")
    if ids.shape != idx.shape:
        raise DataError(
            f"{name}: {ids.size} semantic ids but {idx.size} point indices; they must pair up"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DataError(
            f"{name}: point index out of range [0, {n - 1}]: found [{idx.min()}, {idx.max()}]"
        )
    return f, d, ids.astype(np.int64), idx.astype(np.int64)


def build_prototypes(labelled: list[LabelledShape], reduction: str = "mean") -> KeypointPrototypes:
    """Keypoint prototype features and target distances from labelled shapes (ALGORITHM §3).

    Args:
        labelled: the support shapes; all must have the same feature dimension C.
        reduction: ``"mean"`` averages each pair's distance over the shapes containing both
            ids; ``"sum"`` adds them up as the reference code does.

    Returns:
        KeypointPrototypes with K = number of distinct semantic ids in ``labelled``.

    Raises:
        DataError: empty list, mismatched C, bad shapes or a point index out of range
            (the message names the model id).
        ConfigError: unknown ``reduction``.
    """
    if reduction not in REDUCTIONS:
        raise ConfigError(f"prototype reduction {reduction!r} unknown; expected {REDUCTIONS}")
    if not labelled:
        raise DataError("build_prototypes: no labelled shapes given (need at least one)")
    checked = []
    channels = None
    for shape in labelled:
        item = _checked(shape, channels)
        channels = item[0].shape[1]
        checked.append(item)
    all_ids = np.unique(np.concatenate([c[2] for c in checked]))
    k = len(all_ids)
    feat_sum = np.zeros((k, channels), dtype=np.float64)
    dist_sum = np.zeros((k, k), dtype=np.float64)
    counts = np.zeros((k, k), dtype=np.int64)
    for f, d, ids, idx in checked:
        if ids.size == 0:
            continue
        present, inverse = np.unique(ids, return_inverse=True)
        slots = np.searchsorted(all_ids, present)
        # (P, K_i) averaging matrix over duplicate annotations of one id in this shape
        avg = (inverse[None, :] == np.arange(len(present))[:, None]).astype(np.float64)
        avg /= avg.sum(axis=1, keepdims=True)
        feat_sum[slots] += avg @ f[idx].astype(np.float64)
        pair = avg @ d[np.ix_(idx, idx)].astype(np.float64) @ avg.T
        np.fill_diagonal(pair, 0.0)
        dist_sum[np.ix_(slots, slots)] += pair
        counts[np.ix_(slots, slots)] += 1
    occurrences = np.diag(counts).astype(np.float64)
    features = (feat_sum / occurrences[:, None]).astype(np.float32)
    if reduction == "mean":
        targets = np.divide(dist_sum, counts, out=np.zeros_like(dist_sum), where=counts > 0)
    else:
        targets = dist_sum
    return KeypointPrototypes(
        semantic_ids=all_ids,
        features=features,
        target_distances=targets,
        pair_counts=counts,
        shot_ids=[s.model_id for s in labelled],
        reduction=reduction,
    )


# How a labelled shape's keypoint features are taken (``features.labelled``):
# ``points``: the shape's geodesically smoothed point features at the annotated point indices;
# ``annotated_xyz``: the authors' convention, the view-averaged features at the annotated
# keypoints smoothed among those keypoints only (docs/findings/paper-conventions.md).
LABELLED_FEATURES = ("points", "annotated_xyz")


def keypoint_only_features(
    unsmoothed: np.ndarray,
    counts: np.ndarray,
    geodesic_normalised: np.ndarray,
    point_indices: np.ndarray,
    sigma: float = 0.01,
) -> np.ndarray:
    """Features at the annotated keypoints, geodesically smoothed among the keypoints only.

    The authors' code back-projects a labelled shape's features at its annotated ``xyz``
    alone and smooths them with the keypoint-to-keypoint geodesics, so with ``sigma = 0.01``
    the prototypes are close to unsmoothed. KeypointNet's ``xyz`` is the point at its
    ``point_index`` (within 5e-7 on the real chair), so the view averages at the point
    indices are the features at ``xyz``.

    Args:
        unsmoothed: (N, C) view-averaged point features (zero where never seen).
        counts: (N,) views that saw each point.
        geodesic_normalised: (N, N) geodesics divided by their maximum.
        point_indices: (K,) the annotated points.
        sigma: smoothing width on normalised geodesics (``features.sigma``).

    Returns:
        (K, C) float32, row k for ``point_indices[k]``.
    """
    from bt3d.backproject import geodesic_smooth

    f = np.asarray(unsmoothed)
    c = np.asarray(counts).reshape(-1)
    d = np.asarray(geodesic_normalised)
    idx = np.asarray(point_indices, dtype=np.int64).reshape(-1)
    n = f.shape[0] if f.ndim == 2 else -1
    if f.ndim != 2 or c.shape != (n,) or d.shape != (n, n):
        raise DataError(
            f"keypoint features need unsmoothed (N, C), counts (N,) and geodesics (N, N); got "
            f"{f.shape}, {c.shape} and {d.shape}"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DataError(f"point index out of range [0, {n - 1}]: found [{idx.min()}, {idx.max()}]")
    smoothed = geodesic_smooth(
        f[idx].astype(np.float32), c[idx], d[np.ix_(idx, idx)].astype(np.float32), sigma=sigma
    )
    return np.asarray(smoothed, dtype=np.float32)


def labelled_shape(
    features: np.ndarray,
    geodesic_normalised: np.ndarray,
    semantic_ids: np.ndarray,
    point_indices: np.ndarray,
    model_id: str = "",
    *,
    labelled: str = "points",
    unsmoothed: np.ndarray | None = None,
    counts: np.ndarray | None = None,
    sigma: float = 0.01,
) -> LabelledShape:
    """A :class:`LabelledShape` whose keypoint features follow ``labelled``.

    Args:
        features: (N, C) smoothed point features (used by ``"points"``).
        geodesic_normalised: (N, N).
        semantic_ids, point_indices: (K,) the annotation.
        labelled: ``"points"`` (default) or ``"annotated_xyz"`` (the authors' convention,
            :func:`keypoint_only_features`; needs ``unsmoothed`` (N, C) and ``counts`` (N,)).
        sigma: smoothing width of ``"annotated_xyz"``.

    Returns:
        For ``"points"`` the shape as given; for ``"annotated_xyz"`` a shape of K points (its
        keypoints), so :func:`build_prototypes` reads the same target distances.
    """
    if labelled not in LABELLED_FEATURES:
        raise ConfigError(
            f"features.labelled: {labelled!r} unknown; expected one of {LABELLED_FEATURES}"
        )
    if labelled == "points":
        return LabelledShape(features, geodesic_normalised, semantic_ids, point_indices, model_id)
    if unsmoothed is None or counts is None:
        raise DataError(
            f"labelled shape {model_id or '<unnamed>'}: features.labelled: annotated_xyz needs "
            "the unsmoothed features and view counts of the shape (recompute its features)"
        )
    idx = np.asarray(point_indices, dtype=np.int64).reshape(-1)
    d = np.asarray(geodesic_normalised)
    return LabelledShape(
        features=keypoint_only_features(unsmoothed, counts, d, idx, sigma),
        geodesic_normalised=d[np.ix_(idx, idx)],
        semantic_ids=semantic_ids,
        point_indices=np.arange(len(idx), dtype=np.int64),
        model_id=model_id,
    )
