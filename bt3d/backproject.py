"""Back-projection of 2D feature maps onto a point cloud (ALGORITHM.md §1.5-1.6).

Two steps, each a pure function on tensors:

1. :func:`sample_point_features`: every point takes, in every view where it is visible, the
   feature of the feature-map cell its projection falls in (``mode="nearest"``, the
   reference), or a bilinear blend of the four nearest cell centres (``mode="bilinear"``);
   the per-view features are averaged over the views that see the point.
2. :func:`geodesic_smooth`: a Gaussian of the normalised geodesic distance spreads the
   features over the surface, weighting each point by how many views saw it:
   ``out_i = sum_j W_ij c_j f_j / sum_j W_ij c_j``, ``W = exp(-D^2 / (2 sigma^2))``, one
   matrix product. :func:`reference_geodesic_smooth_loop` is the per-point loop of the
   authors' code, kept for tests and the benchmark.

Pixel convention (as :meth:`bt3d.cameras.Cameras.project`): ``pixels[..., 0]`` is x = column,
``pixels[..., 1]`` is y = row, in pixel units, pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)``
so its centre is at ``(c + 0.5, r + 0.5)``; an image is ``image_size`` pixels square and the
feature map's ``h x w`` cells tile it exactly (a cell is ``image_size / w`` pixels wide).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bt3d.errors import ConfigError, DataError

SAMPLING_MODES = ("nearest", "bilinear")

# Largest (views x points x channels) block of sampled features held at once, in elements
# (64 Mi float32 = 256 MiB); the views are processed in chunks below it.
_CHUNK_ELEMENTS = 64 * 2**20


def _as_tensor(value: np.ndarray | torch.Tensor, device: torch.device, dtype=None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(value), device=device, dtype=dtype)


def _check_sampling_inputs(
    feature_maps: torch.Tensor, pixels: torch.Tensor, visible: torch.Tensor, image_size: int
) -> None:
    if feature_maps.ndim != 4:
        raise DataError(
            f"feature_maps must be a (V, C, h, w) tensor, got shape {tuple(feature_maps.shape)}"
        )
    v = feature_maps.shape[0]
    if pixels.ndim != 3 or pixels.shape[0] != v or pixels.shape[2] != 2:
        raise DataError(
            f"pixels must be (V, N, 2) with V = {v} views like feature_maps, "
            f"got shape {tuple(pixels.shape)}"
        )
    if tuple(visible.shape) != tuple(pixels.shape[:2]):
        raise DataError(
            f"visible must be (V, N) = {tuple(pixels.shape[:2])} like pixels, "
            f"got shape {tuple(visible.shape)}"
        )
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise ConfigError(f"image_size must be an integer number of pixels, got {image_size!r}")
    if image_size <= 0:
        raise ConfigError(f"image_size must be positive, got {image_size}")
    # Only visible points must project into the image; hidden ones may be anywhere (or NaN).
    px = pixels[visible]
    outside = ~(torch.isfinite(px).all(dim=-1) & (px >= 0).all(dim=-1) & (px <= image_size).all(-1))
    if bool(outside.any()):
        views, points = torch.nonzero(visible, as_tuple=True)
        first = int(torch.nonzero(outside)[0, 0])
        raise DataError(
            f"{int(outside.sum())} visible projection(s) fall outside the "
            f"{image_size} x {image_size} image; first: point {int(points[first])} in view "
            f"{int(views[first])} at {px[first].tolist()}"
        )


def _nearest_cells(pixels: torch.Tensor, h: int, w: int, image_size: int) -> torch.Tensor:
    """(Vc, N, 2) pixels -> (Vc, N) int64 index ``row * w + col`` of the cell each falls in."""
    # floor(pixel / cell size), cell size = image_size / w; a pixel exactly on the far image
    # edge (allowed by the reference's check) belongs to the last cell.
    col = torch.floor(pixels[..., 0] * (w / image_size)).long().clamp_(0, w - 1)
    row = torch.floor(pixels[..., 1] * (h / image_size)).long().clamp_(0, h - 1)
    return row * w + col


def _accumulate_nearest(
    total: torch.Tensor, maps: torch.Tensor, pixels: torch.Tensor, visible: torch.Tensor, size: int
) -> None:
    """Add, into ``total`` (N, C), the cell feature of every visible (view, point) pair.

    Only visible pairs are gathered, from maps laid out as (Vc, h*w, C) so that each gathered
    feature is one contiguous row: a dense (Vc, N, C) gather followed by a weighted sum is
    about 40x slower on a CPU for 62 views x 2048 points x 384 channels.
    """
    vc, c, h, w = maps.shape
    rows = maps.flatten(2).transpose(1, 2).contiguous()  # (Vc, h*w, C)
    views, points = torch.nonzero(visible, as_tuple=True)
    cells = _nearest_cells(pixels, h, w, size)[views, points]
    total.index_add_(0, points, rows[views, cells])


def _bilinear(maps: torch.Tensor, pixels: torch.Tensor, image_size: int) -> torch.Tensor:
    """(Vc, C, h, w), (Vc, N, 2) -> (Vc, N, C): bilinear between cell centres.

    ``grid_sample`` with ``align_corners=False`` puts -1 and +1 on the outer image edges, so a
    cell's value sits at its centre; between the image edge and the outermost centres the
    border value is kept (``padding_mode="border"``) instead of fading to zero.
    """
    grid = (pixels * (2.0 / image_size) - 1.0).to(maps.dtype).unsqueeze(1)  # (Vc, 1, N, 2)
    out = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.squeeze(2).transpose(1, 2)


def sample_point_features(
    feature_maps: torch.Tensor,
    pixels: np.ndarray | torch.Tensor,
    visible: np.ndarray | torch.Tensor,
    image_size: int,
    mode: str = "nearest",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average, over the views that see each point, the feature at the point's projection.

    Args:
        feature_maps: (V, C, h, w) per-view feature maps (any float dtype and device).
        pixels: (V, N, 2) projections, x = column and y = row in pixels of an
            ``image_size`` x ``image_size`` image, pixel centres at +0.5 (numpy or torch).
        visible: (V, N) bool, point n is visible in view v.
        image_size: side of the rendered images in pixels (224 in the reference).
        mode: ``"nearest"`` takes the cell the projection falls in, cell index
            ``floor(pixel / (image_size / h))`` (the reference); ``"bilinear"`` interpolates
            between cell centres (``grid_sample``, ``align_corners=False``, border padding).

    Returns:
        features: (N, C) float32 on ``feature_maps.device``, the mean over the views where the
            point is visible; zeros for a point no view sees.
        counts: (N,) int64, the number of views that see each point.

    Raises:
        DataError: shapes disagree, or a visible point projects outside the image.
        ConfigError: unknown ``mode`` or a non-positive ``image_size``.
    """
    if mode not in SAMPLING_MODES:
        raise ConfigError(f"sampling mode {mode!r} is unknown; expected one of {SAMPLING_MODES}")
    if not isinstance(feature_maps, torch.Tensor):
        raise DataError(f"feature_maps must be a torch.Tensor, got {type(feature_maps).__name__}")
    device = feature_maps.device
    maps = feature_maps.float()
    px = _as_tensor(pixels, device, torch.float64)
    vis = _as_tensor(visible, device, torch.bool)
    _check_sampling_inputs(maps, px, vis, image_size)
    v, c = maps.shape[:2]
    n = px.shape[1]
    # Hidden points may carry NaN or far-away projections: park them at the image centre so
    # that the sampling stays finite (their weight is 0 anyway).
    px = torch.where(vis.unsqueeze(-1), px, torch.full_like(px, image_size / 2.0))
    total = torch.zeros(n, c, dtype=torch.float32, device=device)
    step = max(1, _CHUNK_ELEMENTS // max(1, n * c))
    for start in range(0, v, step):
        stop = min(v, start + step)
        if mode == "nearest":
            _accumulate_nearest(
                total, maps[start:stop], px[start:stop], vis[start:stop], image_size
            )
        else:
            sampled = _bilinear(maps[start:stop], px[start:stop], image_size)  # (Vc, N, C)
            total += (sampled * vis[start:stop].unsqueeze(-1)).sum(dim=0)
    counts = vis.sum(dim=0, dtype=torch.int64)
    seen = counts > 0
    total[seen] /= counts[seen].to(torch.float32).unsqueeze(-1)
    return total, counts


def _check_smoothing_inputs(features, counts, geodesic, sigma: float) -> None:
    if features.ndim != 2:
        raise DataError(f"features must be (N, C), got shape {tuple(features.shape)}")
    n = features.shape[0]
    if tuple(counts.shape) != (n,):
        raise DataError(f"counts must be (N,) = ({n},) like features, got {tuple(counts.shape)}")
    if tuple(geodesic.shape) != (n, n):
        raise DataError(
            f"geodesic_normalised must be (N, N) = ({n}, {n}) like features, "
            f"got {tuple(geodesic.shape)}"
        )
    if bool((counts < 0).any()):
        raise DataError("counts must be non-negative view counts")
    if not (isinstance(sigma, (int, float, np.floating)) and np.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"smoothing sigma must be a positive number, got {sigma!r}")


def _to_torch(features, counts, geodesic):
    """Common torch view of the smoothing inputs; dtype float32 unless features are float64."""
    if isinstance(features, torch.Tensor):
        device = features.device
        dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    else:
        device = torch.device("cpu")
        dtype = torch.float64 if np.asarray(features).dtype == np.float64 else torch.float32
    return (
        _as_tensor(features, device, dtype),
        _as_tensor(counts, device, dtype),
        _as_tensor(geodesic, device, dtype),
    )


def _like_input(result: torch.Tensor, features) -> np.ndarray | torch.Tensor:
    return result if isinstance(features, torch.Tensor) else result.cpu().numpy()


def geodesic_smooth(
    features: np.ndarray | torch.Tensor,
    counts: np.ndarray | torch.Tensor,
    geodesic_normalised: np.ndarray | torch.Tensor,
    sigma: float = 0.01,
) -> np.ndarray | torch.Tensor:
    """Gaussian geodesic smoothing of view-averaged point features, as one matrix product.

    ``out_i = sum_j W_ij c_j f_j / sum_j W_ij c_j`` with ``W = exp(-D^2 / (2 sigma^2))``:
    points never seen (``c_j = 0``) contribute nothing; a point whose weighted count is 0
    (nothing seen within reach of the Gaussian, up to float underflow) gets zeros, not NaN.

    Args:
        features: (N, C) view-mean features (numpy or torch).
        counts: (N,) number of views that saw each point.
        geodesic_normalised: (N, N) geodesic distances divided by their maximum.
        sigma: Gaussian width in normalised geodesic units (0.01 in the paper).

    Returns:
        (N, C) smoothed features, the same kind (numpy or torch) and device as ``features``;
        float64 for float64 features, else float32. Computed in that dtype, like the
        reference (float32), so weights beyond about 13 sigma underflow to 0.
    """
    f, c, d = _to_torch(features, counts, geodesic_normalised)
    _check_smoothing_inputs(f, c, d, sigma)
    weights = torch.exp(d.square() / (-2.0 * sigma**2))  # (N, N), symmetric
    # One product gives both sums: [sum_j W_ij c_j f_j | sum_j W_ij c_j].
    sums = weights @ torch.cat([f * c.unsqueeze(1), c.unsqueeze(1)], dim=1)
    numerator, denominator = sums[:, :-1], sums[:, -1]
    out = torch.zeros_like(numerator)
    reached = denominator > 0
    out[reached] = numerator[reached] / denominator[reached].unsqueeze(1)
    return _like_input(out, features)


def reference_geodesic_smooth_loop(
    features: np.ndarray | torch.Tensor,
    counts: np.ndarray | torch.Tensor,
    geodesic_normalised: np.ndarray | torch.Tensor,
    sigma: float = 0.01,
    points: np.ndarray | None = None,
) -> np.ndarray | torch.Tensor:
    """The same smoothing as :func:`geodesic_smooth`, written as the authors' per-point loop.

    For every seen point i, its feature sum ``c_i f_i`` is spread to all points with weight
    ``W[i]`` (one outer product per point) and its count ``c_i`` likewise; the sums are divided
    at the end. O(N^2 C) Python-level work: for tests and the benchmark only.

    Args:
        features, counts, geodesic_normalised, sigma: as :func:`geodesic_smooth`.
        points: optional (P,) indices of the source points to loop over (default all); the
            benchmark times a subset and extrapolates. With a subset the result is partial.

    Returns:
        (N, C) like :func:`geodesic_smooth`.
    """
    f, c, d = _to_torch(features, counts, geodesic_normalised)
    _check_smoothing_inputs(f, c, d, sigma)
    weights = torch.exp(d.square() / (-2.0 * sigma**2))
    total = torch.zeros_like(f)
    weight_sum = torch.zeros_like(c)
    sources = range(len(f)) if points is None else (int(i) for i in points)
    for i in sources:
        if c[i] <= 0:
            continue
        total += torch.outer(weights[i], f[i] * c[i])
        weight_sum += weights[i] * c[i]
    reached = weight_sum > 0
    total[reached] /= weight_sum[reached].unsqueeze(1)
    total[~reached] = 0
    return _like_input(total, features)
