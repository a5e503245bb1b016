"""The per-shape feature pipeline: mesh + point cloud + 2D backbone -> smoothed point features.

``extract_shape_features`` is the one function the workflow rules and the ``bt3d features``
command call. It chains the stage modules (ALGORITHM §1-2)::

    cameras.view_sphere -> cameras.fit_cameras -> render.render
      -> backbones.extract_feature_maps -> visibility.point_visibility + Cameras.project
      -> backproject.sample_point_features -> geodesic.geodesic_matrix + normalise_geodesic
      -> backproject.geodesic_smooth

:class:`StageTimer` records the wall time and peak memory of each stage (used by
``benchmarks/stages.py``); :func:`save_shape_features` / :func:`load_shape_features` store a
:class:`ShapeFeatures` as a checked ``.npz`` artifact (:mod:`bt3d.cache`).
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bt3d import cameras as cam
from bt3d import geodesic as geo
from bt3d.backbones import extract_feature_maps
from bt3d.backproject import geodesic_smooth, sample_point_features
from bt3d.cache import config_hash, decode_geodesic, encode_geodesic, load_arrays, save_arrays
from bt3d.device import resolve_device
from bt3d.errors import CacheError, ConfigError, DataError
from bt3d.render import render
from bt3d.settings import FeatureSettings, GeodesicSettings
from bt3d.structures import Mesh
from bt3d.tokens import token_mask
from bt3d.visibility import point_visibility

STAGES = (
    "geodesics",
    "cameras",
    "render",
    "visibility+projection",
    "backbone",
    "back-projection",
    "smoothing",
)


@dataclass(frozen=True)
class ShapeFeatures:
    """Everything the few-shot stages need about one shape.

    Attributes:
        features: (N, C) float32 geodesically smoothed point features.
        counts: (N,) int64 number of views in which each point is visible.
        geodesic: (N, N) float64 raw geodesic distances on the kNN graph.
        geodesic_normalised: (N, N) float64 ``geodesic / geodesic.max()``.
        unsmoothed: (N, C) float32 view-averaged features before smoothing (zero where
            ``counts == 0``).
        points: (N, 3) float64 the point cloud the features belong to.
    """

    features: np.ndarray
    counts: np.ndarray
    geodesic: np.ndarray
    geodesic_normalised: np.ndarray
    unsmoothed: np.ndarray
    points: np.ndarray

    @property
    def num_points(self) -> int:
        return int(self.features.shape[0])

    @property
    def seen_fraction(self) -> float:
        """Share of points visible in at least one view."""
        return float((self.counts > 0).mean()) if len(self.counts) else 0.0


@dataclass
class StageRecord:
    """Wall time and memory figures of one stage run."""

    stage: str
    seconds: float
    rss_growth_mb: float
    python_peak_mb: float | None
    cuda_peak_mb: float | None


@dataclass
class StageTimer:
    """Per-stage wall time and peak memory.

    Memory is measured three ways, each stated in :class:`StageRecord`:

    * ``rss_growth_mb``: growth of the process's peak resident set size
      (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) over the stage. It covers everything
      (numpy, torch CPU tensors, Embree, ONNX) but only shows memory *beyond the previous
      high-water mark*, so a stage that reuses freed memory reports ~0.
    * ``python_peak_mb``: when ``trace_python`` is true, the peak of :mod:`tracemalloc`
      above the stage's starting level. numpy buffers are traced; torch CPU tensors are not.
      Tracing slows Python-heavy code, so it is off by default.
    * ``cuda_peak_mb``: ``torch.cuda.max_memory_allocated`` during the stage, when CUDA is
      available (else ``None``).
    """

    trace_python: bool = False
    records: list[StageRecord] = field(default_factory=list)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` block and append a :class:`StageRecord` named ``name``."""
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        tracing = self.trace_python
        if tracing:
            started_tracing = not tracemalloc.is_tracing()
            if started_tracing:
                tracemalloc.start()
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
        rss0 = _max_rss_mb()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            rss_growth = _max_rss_mb() - rss0
            py_peak = None
            if tracing:
                _, peak = tracemalloc.get_traced_memory()
                py_peak = (peak - base) / 2**20
                if started_tracing:
                    tracemalloc.stop()
            cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
            self.records.append(StageRecord(name, seconds, rss_growth, py_peak, cuda_peak))

    def totals(self) -> dict[str, float]:
        """Seconds per stage name, summed over repeated runs of the stage."""
        out: dict[str, float] = {}
        for r in self.records:
            out[r.stage] = out.get(r.stage, 0.0) + r.seconds
        return out


def _max_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, B on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def _stage(timer: StageTimer | None, name: str) -> contextlib.AbstractContextManager[None]:
    return timer.stage(name) if timer is not None else contextlib.nullcontext()


def _checked_points(points: np.ndarray, source: str) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise DataError(f"{source}: points must be a non-empty (N, 3) array, got {pts.shape}")
    if not np.isfinite(pts).all():
        raise DataError(f"{source}: points contain NaN or infinite coordinates")
    return pts


def sample_surface(mesh: Mesh, n_points: int, seed: int = 0) -> np.ndarray:
    """(n_points, 3) float64 points sampled uniformly by area on the mesh surface."""
    if n_points < 1:
        raise ConfigError(f"sample_surface: n_points must be >= 1, got {n_points}")
    tri = mesh.triangles
    areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = areas.sum()
    if not total > 0:
        raise ConfigError(f"{mesh.source}: mesh has zero surface area; cannot sample points")
    rng = np.random.default_rng(seed)
    face = rng.choice(len(tri), size=n_points, p=areas / total)
    u, v = rng.random(n_points), rng.random(n_points)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[face]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def shape_geodesic(
    mesh: Mesh,
    points: np.ndarray,
    settings: GeodesicSettings,
    source: str,
    threads: int = 1,
) -> np.ndarray:
    """(N, N) float64 raw geodesic distances of a shape's points on their kNN graph, as
    stored (float16 normalised times the maximum, :func:`bt3d.cache.encode_geodesic`): every
    stage uses them so. With ``settings.normalise`` in units of the mesh's bounding-box
    diagonal (:func:`unit_box`)."""
    if settings.normalise:
        points = unit_box(mesh, points)[1]
    raw = geo.geodesic_matrix(
        points, k=settings.knn, unreachable=settings.unreachable, source=source, threads=threads
    )
    return decode_geodesic(*encode_geodesic(raw))


def unit_box(mesh: Mesh, points: np.ndarray) -> tuple[Mesh, np.ndarray]:
    """Centre ``mesh`` and ``points`` on the mesh's bounding box and scale both to a unit
    bounding-box diagonal (ShapeNet's scale, which the default view sphere of radius 1.1 and
    60 deg field of view are made for).

    Args:
        mesh: (V, 3) vertices, (F, 3) faces.
        points: (N, 3) points in the mesh's frame.

    Returns:
        ``(moved mesh, moved points (N, 3))``.

    Raises:
        DataError: the mesh's bounding box has zero size.
    """
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    centre, diagonal = (lo + hi) / 2, float(np.linalg.norm(hi - lo))
    if not diagonal > 0:
        raise DataError(f"{mesh.source}: mesh has a zero-size bounding box")
    moved = Mesh(
        (mesh.vertices - centre) / diagonal,
        mesh.faces,
        mesh.vertex_colors,
        mesh.vertex_normals,
        mesh.source,
    )
    return moved, (np.asarray(points, dtype=np.float64) - centre) / diagonal


def backproject_views(
    mesh: Mesh,
    points: np.ndarray,
    backbone: torch.nn.Module,
    settings: FeatureSettings,
    device: str | torch.device = "cpu",
    timer: StageTimer | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render the views, run the backbone and average each point's features over its views.

    Args:
        mesh: the shape's triangle mesh.
        points: (N, 3) point cloud on the mesh surface.
        backbone: from :func:`bt3d.backbones.get_backbone`.
        settings: views, renderer, backbone precision and tokens, sampling, normalise,
            visibility layers (faces per pixel that count as seen: 1 = the face drawn there;
            the authors' code 5, docs/findings/paper-conventions.md).
        device: where images go for the backbone (``"cpu"``, ``"cuda"``, ``"auto"``).
        timer: optional :class:`StageTimer` to record each stage.

    Returns:
        ``(features (N, C) float32, counts (N,) int64)`` before geodesic smoothing.
    """
    r, bb, sampling, normalise = (
        settings.render,
        settings.backbone,
        settings.sampling,
        settings.normalise,
    )
    image_size = r.image_size
    layers = settings.visibility_layers
    if not isinstance(layers, (int, np.integer)) or isinstance(layers, bool) or layers < 1:
        raise ConfigError(
            f"features.visibility_layers must be an integer >= 1 (1 = the face drawn at a pixel, "
            f"the authors' code 5), got {layers!r}"
        )
    pts = _checked_points(points, mesh.source)
    if normalise:
        mesh, pts = unit_box(mesh, pts)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    with _stage(timer, "cameras"):
        eyes = cam.view_sphere(distance=r.distance, n_azimuth=r.n_azimuth, n_polar=r.n_polar)
        try:
            cameras = cam.fit_cameras(pts, eyes, fov_degrees=r.fov, image_size=image_size)
        except DataError as exc:
            hint = "dataset.normalise: true or bt3d features --normalise renders it at that scale"
            raise DataError(f"{mesh.source}: {exc}{'' if normalise else f' ({hint})'}") from None
    with _stage(timer, "render"):
        raster = render(
            mesh, cameras, backend=r.backend, textured=r.textured, faces_per_pixel=layers
        )
    with _stage(timer, "visibility+projection"):
        # the nearest face per pixel, or the K nearest (occluded ones too) as the authors do
        seen = raster.face_ids if raster.layers is None else raster.layers
        visible = point_visibility(mesh, pts, np.asarray(seen))
        pixels, _ = cameras.project(pts)
    with _stage(timer, "backbone"):
        images = torch.as_tensor(np.asarray(raster.images, dtype=np.float32), device=dev)
        keep = token_mask(
            bb.tokens,
            raster.face_ids,
            pixels,
            visible,
            image_size,
            backbone.patch_size,
            sampling,
            margin=bb.token_margin,
            background_stride=bb.background_stride,
        )
        if not getattr(backbone, "supports_token_mask", False):
            keep = None  # "object" skips patches where the backbone can (ViTs); others run all
        feature_maps = extract_feature_maps(
            backbone,
            images,
            batch_size=bb.batch_size,
            precision=bb.precision,
            keep=None if keep is None else torch.from_numpy(keep),
        )
    with _stage(timer, "back-projection"):
        features, counts = sample_point_features(
            feature_maps, pixels, visible, image_size, mode=sampling
        )
    return _numpy(features).astype(np.float32), _numpy(counts).astype(np.int64)


def _numpy(value: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def extract_shape_features(
    mesh: Mesh,
    points: np.ndarray,
    backbone: torch.nn.Module,
    settings: FeatureSettings,
    geodesic: np.ndarray,
    device: str | torch.device = "cpu",
    timer: StageTimer | None = None,
) -> ShapeFeatures:
    """Back-projected, geodesically smoothed features of one shape (ALGORITHM §1-2).

    Args:
        mesh: the shape's triangle mesh.
        points: (N, 3) point cloud sampled on the mesh (KeypointNet: N = 2048).
        backbone: a 2D backbone from :func:`bt3d.backbones.get_backbone`.
        settings: :class:`bt3d.settings.FeatureSettings` (the config's ``render``,
            ``backbone``, ``features.sampling``/``sigma`` and ``dataset.normalise``).
        geodesic: (N, N) raw geodesic distances of the points (:func:`shape_geodesic`).
        device: where images go for the backbone (``"cpu"``, ``"cuda"``, ``"auto"``).
        timer: optional :class:`StageTimer` to record each stage.

    Returns:
        :class:`ShapeFeatures`.

    Raises:
        DataError: bad points, mesh or geodesic matrix; ConfigError: unknown option values
        (raised by the stage modules, naming the setting).
    """
    if settings.sigma <= 0:
        raise ConfigError(f"smoothing sigma must be > 0, got {settings.sigma}")
    pts = _checked_points(points, mesh.source)
    unsmoothed, counts = backproject_views(mesh, pts, backbone, settings, device, timer)
    raw = np.asarray(geodesic, dtype=np.float64)
    if raw.shape != (len(pts), len(pts)):
        raise DataError(
            f"{mesh.source}: precomputed geodesic matrix is {raw.shape}, "
            f"expected {(len(pts), len(pts))}"
        )
    normalised = geo.normalise_geodesic(raw, source=mesh.source)
    with _stage(timer, "smoothing"):
        smoothed = geodesic_smooth(unsmoothed, counts, normalised, sigma=settings.sigma)
    return ShapeFeatures(
        features=np.asarray(smoothed, dtype=np.float32),
        counts=counts,
        geodesic=raw,
        geodesic_normalised=normalised,
        unsmoothed=unsmoothed,
        points=pts,
    )


def save_shape_features(
    path: str | os.PathLike[str], shape: ShapeFeatures, header: Mapping[str, Any]
) -> Path:
    """Store a :class:`ShapeFeatures` as a checked ``.npz`` (geodesics as float16, see cache).

    ``header`` should hold ``config_hash`` (of the settings that produced it), ``backbone``,
    ``class_id`` and ``model_id``.
    """
    encoded, scale = encode_geodesic(shape.geodesic)
    arrays = {
        "features": shape.features.astype(np.float32),
        "counts": shape.counts.astype(np.int64),
        "unsmoothed": shape.unsmoothed.astype(np.float32),
        "geodesic_f16": encoded,
        "geodesic_scale": np.float64(scale),
        "points": shape.points.astype(np.float64),
    }
    return save_arrays(path, arrays, {"kind": "shape_features", **dict(header)})


def load_shape_features(
    path: str | os.PathLike[str], expected: Mapping[str, Any] | None = None
) -> tuple[ShapeFeatures, dict[str, Any]]:
    """Read a file written by :func:`save_shape_features`; header checked as in the cache.

    The geodesics come back within float16 precision (see :mod:`bt3d.cache`).
    """
    arrays, header = load_arrays(path, {"kind": "shape_features", **dict(expected or {})})
    needed = ("features", "counts", "unsmoothed", "geodesic_f16", "geodesic_scale", "points")
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise CacheError(f"{path}: shape features file lacks arrays {missing}")
    scale = float(arrays["geodesic_scale"])
    normalised = decode_geodesic(arrays["geodesic_f16"])
    shape = ShapeFeatures(
        features=arrays["features"],
        counts=arrays["counts"],
        geodesic=normalised * scale,
        geodesic_normalised=normalised,
        unsmoothed=arrays["unsmoothed"],
        points=arrays["points"],
    )
    return shape, header


__all__ = [
    "STAGES",
    "ShapeFeatures",
    "StageRecord",
    "StageTimer",
    "backproject_views",
    "config_hash",
    "extract_shape_features",
    "load_shape_features",
    "sample_surface",
    "save_shape_features",
    "shape_geodesic",
    "unit_box",
]
