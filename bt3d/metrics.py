"""Keypoint evaluation as in KeypointNet / UKPGAN / Back to 3D (ALGORITHM.md §5).

All metrics take per-shape lists (one entry per test shape of a category) of point indices
into the shape's point cloud, and the shape's (N, N) geodesic matrix: raw, not normalised
(KeypointNet shapes are already normalised), unreachable pairs set to the maximum
(:func:`bt3d.geodesic.geodesic_matrix`).

mIoU, followed exactly (qq456cvb/KeypointNet ``benchmark_scripts/metrics.py``
``eval_det_cls_iou`` = ``tasks/saliency/evaluate_iou.py``, qq456cvb/UKPGAN ``eval_iou.py``
``eval_det_cls``, copied by wimmerth/back-to-3d-few-shot-keypoints ``utils/evaluation.py``):

* ``npos`` = number of ground-truth keypoints over all shapes;
* a prediction is a false positive when ``D[pred, gt] > t`` for *every* ground-truth keypoint
  of its shape (all predictions of a shape without ground truth are false positives);
* a ground-truth keypoint is a false negative when ``D[gt, pred] > t`` for every prediction
  (all of them when the shape has no prediction);
* ``IoU(t) = (npos - FN) / max(npos + FP, eps)``.

The comparison is strict (``>``), so a match needs ``D <= t``: at ``t = 0`` exact hits count.
It is done in the geodesic matrix's own dtype, as numpy does in those scripts (they keep
float32 matrices and compare them with a Python float). Duplicated indices are counted as
often as they occur, as there; thresholds default to ``0.01 * i, i = 0..10``.

PCK (correspondence: each ground-truth keypoint against the prediction of the same semantic
id) exists in two public variants, both available here:

* ``average="keypoints"`` (default): hits over all ground-truth keypoints of the category,
  a hit being ``D <= t`` (``strict=False``), as KeypointNet's correspondence task does
  (``tasks/correspondence/utils/tools.py``: ``calculate_correspondence``, ``dists <= threshold``
  over all keypoints; Euclidean there, geodesic here);
* ``average="shapes", strict=True``: the per-shape share of hits with ``D < t``, averaged over
  shapes, as ``benchmark_scripts/metrics.py`` ``eval_pck`` does (PCK(0) is then always 0).

A ground-truth keypoint whose semantic id has no prediction counts as a miss. With
``symmetric_groups`` a prediction also matches the ground truth of any id sharing a symmetry
group with its own (e.g. the left and right armrest); each ground-truth keypoint takes its
nearest such prediction, independently of the others (two keypoints may use the same one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bt3d.errors import ConfigError, DataError

DEFAULT_THRESHOLDS = 0.01 * np.arange(11)
PCK_AVERAGES = ("keypoints", "shapes")
SYMMETRY_KINDS = ("reflection", "rotation")

IdGroups = Sequence[Iterable[int]]
# One entry per test shape: a (K_i,) array or list of point indices or semantic ids.
PerShape = Sequence[Sequence[int] | np.ndarray]


# ---------------------------------------------------------------- validation helpers


def _check_lengths(**lists: Sequence[Any]) -> int:
    lengths = {name: len(value) for name, value in lists.items() if value is not None}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise DataError(f"per-shape lists differ in length: {described}")
    return next(iter(lengths.values()))


def _check_thresholds(thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or len(t) == 0 or not np.isfinite(t).all():
        raise ConfigError(f"thresholds must be a non-empty 1-D list of finite numbers, got {t!r}")
    return t


def _check_geodesic(shape: int, geodesic: np.ndarray) -> np.ndarray:
    d = np.asarray(geodesic)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] == 0:
        raise DataError(f"shape {shape}: geodesic matrix must be square (N, N), got {d.shape}")
    if not np.issubdtype(d.dtype, np.floating):
        d = d.astype(np.float64)
    if np.isnan(d).any():
        raise DataError(f"shape {shape}: geodesic matrix holds NaN values")
    return d


def _check_indices(
    shape: int, what: str, indices: Sequence[int] | np.ndarray, n: int
) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise DataError(
            f"shape {shape}: {what} must be a 1-D array of integers, got {idx.dtype} {idx.shape}"
        )
    bad = (idx < 0) | (idx >= n)
    if bad.any():
        raise DataError(
            f"shape {shape}: {what} {int(idx[bad][0])} is outside the point cloud [0, {n})"
        )
    return idx.astype(np.int64)


def _check_ids(shape: int, what: str, ids: Sequence[int] | np.ndarray, count: int) -> np.ndarray:
    out = np.asarray(ids)
    if out.size == 0:
        out = np.zeros(0, dtype=np.int64)
    if out.ndim != 1 or not np.issubdtype(out.dtype, np.integer):
        raise DataError(f"shape {shape}: {what} must be 1-D integers, got {out.dtype} {out.shape}")
    if len(out) != count:
        raise DataError(f"shape {shape}: {what} has {len(out)} entries for {count} keypoints")
    return out.astype(np.int64)


def _nearest(geodesic: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(len(rows),) min over ``cols`` of ``geodesic[rows][:, cols]``; inf when ``cols`` is empty."""
    if len(cols) == 0:
        return np.full(len(rows), np.inf, dtype=geodesic.dtype)
    return geodesic[np.ix_(rows, cols)].min(axis=1)


def _beyond(dist: np.ndarray, thresholds: np.ndarray, or_equal: bool = False) -> np.ndarray:
    """(len(dist), T) ``dist > t`` (``dist >= t`` if ``or_equal``), compared in ``dist``'s dtype."""
    t = thresholds.astype(dist.dtype)[None, :]
    return dist[:, None] >= t if or_equal else dist[:, None] > t


# ---------------------------------------------------------------- mIoU


def iou_counts(
    pred_indices: PerShape,
    gt_indices: PerShape,
    geodesics: Sequence[np.ndarray],
    thresholds: Sequence[float] | np.ndarray = DEFAULT_THRESHOLDS,
) -> np.ndarray:
    """Per-shape counts behind :func:`iou_curve`: (S, 3, T) int64 ``npos``, ``FP``, ``FN``.

    ``npos`` is the shape's number of ground-truth keypoints (the same at every threshold);
    a prediction is a false positive at ``t`` when no ground-truth point is within ``t``,
    a ground-truth point a false negative when no prediction is.

    Args:
        pred_indices: per shape, (K_i,) predicted point indices.
        gt_indices: per shape, (M_i,) ground-truth point indices.
        geodesics: per shape, (N_i, N_i) raw geodesic distances.
        thresholds: (T,) distances t; a match needs ``D <= t``.

    Raises:
        DataError: lists of different lengths, or an index outside a shape's point cloud.
    """
    _check_lengths(pred_indices=pred_indices, gt_indices=gt_indices, geodesics=geodesics)
    t = _check_thresholds(thresholds)
    out = np.zeros((len(geodesics), 3, len(t)), dtype=np.int64)
    for i, (pred, gt, geo) in enumerate(zip(pred_indices, gt_indices, geodesics, strict=True)):
        d = _check_geodesic(i, geo)
        p = _check_indices(i, "prediction index", pred, len(d))
        g = _check_indices(i, "ground-truth index", gt, len(d))
        out[i, 0] = len(g)
        out[i, 1] = _beyond(_nearest(d, p, g), t).sum(axis=0)
        out[i, 2] = _beyond(_nearest(d, g, p), t).sum(axis=0)
    return out


def iou_from_counts(counts: np.ndarray) -> np.ndarray:
    """(T,) float64 pooled IoU ``(npos - FN) / max(npos + FP, eps)`` from (S, 3, T) counts."""
    npos, fp, fn = np.asarray(counts).sum(axis=0)
    return (npos - fn) / np.maximum(npos + fp, np.finfo(np.float64).eps)


def iou_curve(*args: Any, **kwargs: Any) -> np.ndarray:
    """Keypoint IoU of a category at each geodesic threshold (KeypointNet/UKPGAN protocol):
    :func:`iou_counts` pooled over all shapes (:func:`iou_from_counts`).

    Args:
        args, kwargs: :func:`iou_counts`'s ``pred_indices``, ``gt_indices``, ``geodesics``
            and ``thresholds``.

    Returns:
        (T,) float64 ``(npos - FN) / max(npos + FP, eps)``, pooled over all shapes.
    """
    return iou_from_counts(iou_counts(*args, **kwargs))


def paired_bootstrap_iou(
    counts_a: np.ndarray,
    counts_b: np.ndarray,
    groups: np.ndarray | None = None,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Change of mean pooled IoU from arm A to arm B, with a paired bootstrap interval.

    Shapes are resampled with replacement (the same draw for both arms, so the interval is
    of the paired difference); with ``groups`` (e.g. categories), within each group, and the
    statistic is the mean over groups of each group's pooled IoU (mean mIoU over categories).

    Args:
        counts_a, counts_b: (S, 3, T) :func:`iou_counts` of the same S shapes under A and B.
        groups: (S,) group label of each shape; None = one group.
        resamples: bootstrap draws.
        level: central interval's coverage.
        seed: of the draws.

    Returns:
        ``(B - A (T,), low (T,), high (T,))`` float64: the observed difference and its
        percentile interval.
    """
    a, b = np.asarray(counts_a), np.asarray(counts_b)
    if a.shape != b.shape or a.ndim != 3 or a.shape[1] != 3:
        raise DataError(f"paired counts must both be (S, 3, T), got {a.shape} and {b.shape}")
    labels = np.zeros(len(a), dtype=np.int64) if groups is None else np.asarray(groups)
    if labels.shape != (len(a),):
        raise DataError(f"groups must be ({len(a)},), got {labels.shape}")
    members = [np.flatnonzero(labels == g) for g in np.unique(labels)]

    def statistic(rows: list[np.ndarray]) -> np.ndarray:
        return np.mean([iou_from_counts(b[r]) - iou_from_counts(a[r]) for r in rows], axis=0)

    observed = statistic(members)
    rng = np.random.default_rng(seed)
    draws = np.stack(
        [statistic([m[rng.integers(0, len(m), len(m))] for m in members]) for _ in range(resamples)]
    )
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail], axis=0)
    return observed, low, high


# ---------------------------------------------------------------- PCK


def _symmetry_lookup(groups: IdGroups | None) -> dict[int, set[int]]:
    """semantic id -> every id it may stand for (itself and its symmetry partners)."""
    lookup: dict[int, set[int]] = {}
    for group in groups or ():
        members = {int(x) for x in group}
        for member in members:
            lookup.setdefault(member, {member}).update(members)
    return lookup


def _matched_distances(
    pred_indices, pred_ids, gt_indices, gt_ids, geodesics, symmetric_groups
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per shape: (gt ids (M,), distance (M,) of each GT keypoint to its match, inf if none)."""
    _check_lengths(
        pred_indices=pred_indices,
        pred_ids=pred_ids,
        gt_indices=gt_indices,
        gt_ids=gt_ids,
        geodesics=geodesics,
        symmetric_groups=symmetric_groups,
    )
    out = []
    for i, geo in enumerate(geodesics):
        d = _check_geodesic(i, geo)
        p = _check_indices(i, "prediction index", pred_indices[i], len(d))
        g = _check_indices(i, "ground-truth index", gt_indices[i], len(d))
        p_ids = _check_ids(i, "pred_ids", pred_ids[i], len(p))
        g_ids = _check_ids(i, "gt_ids", gt_ids[i], len(g))
        lookup = _symmetry_lookup(None if symmetric_groups is None else symmetric_groups[i])
        allowed = np.array(
            [[pid in lookup.get(int(gid), {int(gid)}) for pid in p_ids] for gid in g_ids],
            dtype=bool,
        ).reshape(len(g), len(p))
        dist = np.where(allowed, d[np.ix_(g, p)], np.inf)
        nearest = dist.min(axis=1) if len(p) else np.full(len(g), np.inf, dtype=d.dtype)
        out.append((g_ids, nearest.astype(d.dtype, copy=False)))
    return out


def _pck(
    matched: list[tuple[np.ndarray, np.ndarray]],
    thresholds: np.ndarray,
    average: str,
    strict: bool,
) -> np.ndarray:
    if average not in PCK_AVERAGES:
        raise ConfigError(f"PCK average={average!r} is unknown; expected one of {PCK_AVERAGES}")
    # A miss is D > t, or D >= t when a hit must be strictly closer than t.
    hits = [~_beyond(dist, thresholds, or_equal=strict) for _, dist in matched]
    if average == "keypoints":
        total = sum(len(h) for h in hits)
        if total == 0:
            return np.full(len(thresholds), np.nan)
        return sum(h.sum(axis=0) for h in hits) / total
    per_shape = [h.mean(axis=0) for h in hits if len(h)]
    if not per_shape:
        return np.full(len(thresholds), np.nan)
    return np.mean(per_shape, axis=0)


def pck_curve(
    pred_indices: PerShape,
    pred_ids: PerShape,
    gt_indices: PerShape,
    gt_ids: PerShape,
    geodesics: Sequence[np.ndarray],
    thresholds: Sequence[float] | np.ndarray = DEFAULT_THRESHOLDS,
    symmetric_groups: Sequence[IdGroups | None] | None = None,
    average: str = "keypoints",
    strict: bool = False,
) -> np.ndarray:
    """Share of ground-truth keypoints whose same-id prediction lies within each threshold.

    Args:
        pred_indices: per shape, (K_i,) predicted point indices.
        pred_ids: per shape, (K_i,) semantic id of each prediction.
        gt_indices: per shape, (M_i,) ground-truth point indices.
        gt_ids: per shape, (M_i,) semantic id of each ground-truth keypoint.
        geodesics: per shape, (N_i, N_i) raw geodesic distances.
        thresholds: (T,) geodesic distances.
        symmetric_groups: optional, per shape, a list of groups of semantic ids that are
            symmetric to each other (:func:`symmetric_id_groups`), or None for a shape; a
            prediction then also matches the ground truth of its group's other ids.
        average: ``"keypoints"`` pools all keypoints of the category; ``"shapes"`` averages
            per-shape shares over the shapes that have ground truth.
        strict: a hit needs ``D < t`` instead of ``D <= t``.

    Returns:
        (T,) float64 PCK; NaN when no shape has a ground-truth keypoint.

    Raises:
        DataError: lists of different lengths, ids not matching indices, indices out of range.
        ConfigError: unknown ``average``.
    """
    t = _check_thresholds(thresholds)
    matched = _matched_distances(
        pred_indices, pred_ids, gt_indices, gt_ids, geodesics, symmetric_groups
    )
    return _pck(matched, t, average, strict)


def per_keypoint_pck(
    pred_indices: PerShape,
    pred_ids: PerShape,
    gt_indices: PerShape,
    gt_ids: PerShape,
    *args: Any,
    **kwargs: Any,
) -> dict[int, np.ndarray]:
    """PCK of each semantic id: :func:`pck_curve` of the ground-truth keypoints of that id
    alone, pooled over the shapes where it is annotated.

    Args:
        pred_indices, pred_ids, gt_indices, gt_ids: as :func:`pck_curve`.
        args, kwargs: the rest of :func:`pck_curve`'s arguments (``geodesics``, ``thresholds``,
            ``symmetric_groups``, ``strict``); ``average`` is ``"keypoints"``.

    Returns:
        ``{semantic_id: (T,) PCK}``, ids in increasing order.
    """
    _check_lengths(gt_indices=gt_indices, gt_ids=gt_ids)
    gt = [np.asarray(g) for g in gt_indices]
    ids = [_check_ids(i, "gt_ids", g_ids, len(gt[i])) for i, g_ids in enumerate(gt_ids)]
    return {
        sid: pck_curve(
            pred_indices,
            pred_ids,
            [g[i == sid] for g, i in zip(gt, ids, strict=True)],
            [i[i == sid] for i in ids],
            *args,
            average="keypoints",
            **kwargs,
        )
        for sid in sorted({int(x) for i in ids for x in i})
    }


def symmetric_id_groups(
    semantic_ids: Sequence[int] | np.ndarray,
    symmetries: Mapping[str, Any],
    kinds: Sequence[str] = SYMMETRY_KINDS,
    source: str = "<annotation>",
) -> list[tuple[int, ...]]:
    """Groups of symmetric semantic ids from a KeypointNet record's ``symmetries`` entry.

    The record stores ``{"reflection": [{"kp_indexes": [0, 1]}, ...], "rotation":
    [{"kp_indexes": [...], "is_circle": ..., "circle": ...}]}``, where ``kp_indexes`` are
    positions in the record's ``keypoints`` list (not semantic ids: in chair.json a record with
    ids ``0..5, 10..16`` lists its five base legs as positions ``6..10``).

    Args:
        semantic_ids: (K,) semantic id of each keypoint, in the record's order
            (``ShapeAnnotation.semantic_ids``).
        symmetries: the record's ``symmetries`` mapping (``ShapeAnnotation.symmetries``).
        kinds: which symmetry kinds to use.
        source: name used in error messages (file and model id).

    Returns:
        One tuple of semantic ids per group, for :func:`pck_curve`'s ``symmetric_groups``.

    Raises:
        DataError: a malformed entry or a position outside the keypoint list.
    """
    ids = np.asarray(semantic_ids, dtype=np.int64)
    groups: list[tuple[int, ...]] = []
    for kind in kinds:
        entries = symmetries.get(kind, []) if isinstance(symmetries, Mapping) else None
        if not isinstance(entries, list):
            raise DataError(f"{source}: symmetries[{kind!r}] must be a list, got {entries!r}")
        for entry in entries:
            positions = entry.get("kp_indexes") if isinstance(entry, Mapping) else None
            if not isinstance(positions, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) for x in positions
            ):
                raise DataError(f"{source}: {kind} entry without a kp_indexes list: {entry!r}")
            bad = [x for x in positions if not 0 <= x < len(ids)]
            if bad:
                raise DataError(
                    f"{source}: {kind} kp_indexes {bad} outside the {len(ids)} keypoints"
                )
            group = tuple(dict.fromkeys(int(ids[x]) for x in positions))
            if len(group) > 1:
                groups.append(group)
    return groups


# ---------------------------------------------------------------- baseline and summary


def random_baseline_indices(
    n_points: int, n_keypoints: int, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """(n_keypoints,) int64 distinct point indices drawn uniformly: the random-point baseline."""
    if n_keypoints < 0 or n_keypoints > n_points:
        raise ConfigError(
            f"cannot draw {n_keypoints} distinct random keypoints from {n_points} points"
        )
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return generator.choice(n_points, size=n_keypoints, replace=False).astype(np.int64)


def _field(record: Any, *names: str) -> Any:
    for name in names:
        if isinstance(record, Mapping) and name in record:
            return record[name]
        if hasattr(record, name):
            return getattr(record, name)
    raise DataError(f"record {type(record).__name__} has none of the fields {names}")


def evaluate_category(
    predictions: Sequence[Any],
    ground_truths: Sequence[Any],
    geodesics: Sequence[np.ndarray],
    thresholds: Sequence[float] | np.ndarray = DEFAULT_THRESHOLDS,
    symmetric: bool = False,
) -> pd.DataFrame:
    """mIoU and PCK curves of one category's test shapes in one table.

    Args:
        predictions: per shape, an object or mapping with ``indices`` (K,) and
            ``semantic_ids`` (K,) (:class:`bt3d.optimize.Prediction`).
        ground_truths: per shape, an object or mapping with ``point_indices`` (M,) and
            ``semantic_ids`` (M,), plus ``symmetries`` when ``symmetric``
            (:class:`bt3d.structures.ShapeAnnotation`).
        geodesics: per shape, (N, N) raw geodesic distances.
        thresholds: (T,) geodesic thresholds.
        symmetric: also report ``pck_symmetric`` (matches within symmetry groups).

    Returns:
        DataFrame with T rows and columns ``threshold``, ``miou``, ``pck`` (and
        ``pck_symmetric``).
    """
    _check_lengths(predictions=predictions, ground_truths=ground_truths, geodesics=geodesics)
    t = _check_thresholds(thresholds)
    pred_idx = [_field(p, "indices") for p in predictions]
    pred_ids = [_field(p, "semantic_ids") for p in predictions]
    gt_idx = [_field(g, "point_indices", "indices") for g in ground_truths]
    gt_ids = [_field(g, "semantic_ids") for g in ground_truths]
    table = {
        "threshold": t,
        "miou": iou_curve(pred_idx, gt_idx, geodesics, t),
        "pck": pck_curve(pred_idx, pred_ids, gt_idx, gt_ids, geodesics, t),
    }
    if symmetric:
        groups = [
            symmetric_id_groups(
                ids, _field(g, "symmetries"), source=str(getattr(g, "source", f"shape {i}"))
            )
            for i, (g, ids) in enumerate(zip(ground_truths, gt_ids, strict=True))
        ]
        table["pck_symmetric"] = pck_curve(
            pred_idx, pred_ids, gt_idx, gt_ids, geodesics, t, symmetric_groups=groups
        )
    return pd.DataFrame(table)


# ---------------------------------------------------------------- worst cases


def keypoint_errors(
    pred_indices: Sequence[int] | np.ndarray,
    pred_ids: Sequence[int] | np.ndarray,
    gt_indices: Sequence[int] | np.ndarray,
    gt_ids: Sequence[int] | np.ndarray,
    geodesic: np.ndarray,
) -> np.ndarray:
    """Geodesic error of each ground-truth keypoint of one shape.

    Args:
        pred_indices: (K,) predicted point indices.
        pred_ids: (K,) semantic id of each prediction.
        gt_indices: (M,) ground-truth point indices.
        gt_ids: (M,) semantic id of each ground-truth keypoint.
        geodesic: (N, N) geodesic distances (normalised or raw: the errors are in its unit).

    Returns:
        (M,) float64 ``geodesic[gt, pred]`` to the prediction of the same semantic id (the
        nearest one if several share it), ``inf`` where no prediction has that id. Swap the
        roles to get each prediction's distance to its ground truth.
    """
    ((_, dist),) = _matched_distances(
        [pred_indices], [pred_ids], [gt_indices], [gt_ids], [geodesic], None
    )
    return dist.astype(np.float64)


def worst_keypoints(
    model_ids: Sequence[str], gt_ids: PerShape, errors: PerShape, count: int
) -> pd.DataFrame:
    """The ``count`` ground-truth keypoints with the largest finite error, over all shapes.

    Args:
        model_ids: (S,) shape ids.
        gt_ids: per shape, (M_i,) semantic ids of its ground-truth keypoints.
        errors: per shape, (M_i,) their errors (:func:`keypoint_errors`); ``inf`` (no
            prediction of that id) is left out.
        count: rows to keep.

    Returns:
        Columns ``rank`` (1 = worst), ``model_id``, ``semantic_id``, ``error``, sorted by
        error descending, ties by model id and semantic id.
    """
    _check_lengths(model_ids=model_ids, gt_ids=gt_ids, errors=errors)
    rows = [
        (str(m), int(s), float(e))
        for i, m in enumerate(model_ids)
        for s, e in zip(_check_ids(i, "gt_ids", gt_ids[i], len(errors[i])), errors[i], strict=True)
        if np.isfinite(e)
    ]
    rows.sort(key=lambda r: (-r[2], r[0], r[1]))
    table = pd.DataFrame(rows[: max(count, 0)], columns=["model_id", "semantic_id", "error"])
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def worst_shapes(model_ids: Sequence[str], errors: PerShape, count: int) -> list[tuple[str, float]]:
    """The ``count`` shapes with the largest mean finite keypoint error, worst first.

    Returns ``[(model_id, mean error)]``; shapes without a finite error are left out; ties by
    model id.
    """
    _check_lengths(model_ids=model_ids, errors=errors)
    means = []
    for m, e in zip(model_ids, errors, strict=True):
        finite = np.asarray(e, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if len(finite):
            means.append((str(m), float(finite.mean())))
    means.sort(key=lambda r: (-r[1], r[0]))
    return means[: max(count, 0)]
