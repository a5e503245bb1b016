"""Which ViT patches of each view enter attention (``backbone.tokens``).

``"all"`` (the reference) runs every patch of every view. ``"object"`` runs only the patches
the shape covers in the rendering (a pixel whose face id is >= 0) plus the patches that
back-projection reads (the cell of every visible point's projection; with bilinear sampling
also the cells around it): background patches cost as much as object patches, but no point
reads them. It changes the features (DINOv2 without registers keeps global information in
background tokens), so its accuracy is measured in docs/findings/speed.md.

Two options give ``"object"`` some of that context back (both ignored with ``"all"``):
``backbone.token_margin`` m grows the object's patches by m patches in every direction
(:func:`dilate_patches`), and ``backbone.background_stride`` s > 0 adds every s-th patch of
every s-th row as sparse background tokens (:func:`background_grid`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bt3d.errors import ConfigError

TOKEN_CHOICES = ("all", "object")


def object_patches(face_ids: np.ndarray, patch_size: int) -> np.ndarray:
    """(V, H, W) face ids (-1 = background) -> (V, H // p, W // p) bool: patch shows the shape.

    Pixels past the last whole patch (``H % p``) are ignored, as the ViT's patch embedding does.
    """
    ids = np.asarray(face_ids)
    v, height, width = ids.shape
    h, w = height // patch_size, width // patch_size
    cropped = ids[:, : h * patch_size, : w * patch_size] >= 0
    return cropped.reshape(v, h, patch_size, w, patch_size).any(axis=(2, 4))


def sampled_patches(
    pixels: np.ndarray, visible: np.ndarray, image_size: int, grid: tuple[int, int], mode: str
) -> np.ndarray:
    """(V, N, 2) projections, (V, N) visibility -> (V, h, w) bool: cells back-projection reads.

    Nearest sampling reads cell ``floor(pixel / (image_size / w))`` (as
    :func:`bt3d.backproject.sample_point_features`); bilinear also its 8 neighbours.
    """
    h, w = grid
    px = np.asarray(pixels, dtype=np.float64)
    vis = np.asarray(visible, dtype=bool)
    out = np.zeros((px.shape[0], h, w), dtype=bool)
    views, points = np.nonzero(vis)
    xy = px[views, points]
    col = np.clip(np.floor(xy[:, 0] * (w / image_size)).astype(np.int64), 0, w - 1)
    row = np.clip(np.floor(xy[:, 1] * (h / image_size)).astype(np.int64), 0, h - 1)
    out[views, row, col] = True
    if mode == "bilinear":
        grown = F.max_pool2d(torch.from_numpy(out).float()[:, None], 3, stride=1, padding=1)
        out = grown[:, 0].numpy() > 0
    return out


def dilate_patches(mask: np.ndarray, margin: int) -> np.ndarray:
    """(V, h, w) bool -> (V, h, w) bool: every patch within ``margin`` patches of a True one
    (the square neighbourhood, Chebyshev distance <= margin, clipped at the grid's border)."""
    grown = np.asarray(mask, dtype=bool)
    if margin <= 0:
        return grown.copy()
    v, h, w = grown.shape
    padded = np.zeros((v, h + 2 * margin, w + 2 * margin), dtype=bool)
    padded[:, margin : margin + h, margin : margin + w] = grown
    out = np.zeros_like(grown)
    for dy in range(2 * margin + 1):
        for dx in range(2 * margin + 1):
            out |= padded[:, dy : dy + h, dx : dx + w]
    return out


def background_grid(grid: tuple[int, int], stride: int) -> np.ndarray:
    """(h, w) bool: patch (i, j) with ``i % stride == j % stride == stride // 2``, a sparse
    regular grid over the whole view (all False for ``stride`` 0)."""
    h, w = grid
    out = np.zeros((h, w), dtype=bool)
    if stride > 0:
        out[stride // 2 :: stride, stride // 2 :: stride] = True
    return out


def _count(value: object, key: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"backbone.{key} must be an integer >= 0, got {value!r}")
    return int(value)


def token_mask(
    tokens: str,
    face_ids: np.ndarray,
    pixels: np.ndarray,
    visible: np.ndarray,
    image_size: int,
    patch_size: int,
    mode: str,
    margin: int = 0,
    background_stride: int = 0,
) -> np.ndarray | None:
    """(V, h, w) bool patches to run for ``tokens`` (None = all of them).

    With ``"object"``: the covered patches grown by ``margin`` (:func:`dilate_patches`), the
    cells back-projection reads, and the :func:`background_grid` of ``background_stride``.

    Raises:
        ConfigError: unknown ``tokens``, a negative or non-integer margin or stride.
    """
    if tokens not in TOKEN_CHOICES:
        raise ConfigError(f"backbone.tokens {tokens!r} is unknown; expected one of {TOKEN_CHOICES}")
    margin = _count(margin, "token_margin")
    background_stride = _count(background_stride, "background_stride")
    if tokens == "all":
        return None
    covered = dilate_patches(object_patches(face_ids, patch_size), margin)
    keep = covered | sampled_patches(pixels, visible, image_size, covered.shape[1:], mode)
    return keep | background_grid(covered.shape[1:], background_stride)
