"""Which ViT patches of each view enter attention (``backbone.tokens``).

``"all"`` (the reference) runs every patch of every view. ``"object"`` runs only the patches
the shape covers in the rendering (a pixel whose face id is >= 0) plus the patches that
back-projection reads (the cell of every visible point's projection; with bilinear sampling
also the cells around it): background patches cost as much as object patches, but no point
reads them. It changes the features (DINOv2 without registers keeps global information in
background tokens), so its accuracy is measured in docs/findings/speed.md.
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


def token_mask(
    tokens: str,
    face_ids: np.ndarray,
    pixels: np.ndarray,
    visible: np.ndarray,
    image_size: int,
    patch_size: int,
    mode: str,
) -> np.ndarray | None:
    """(V, h, w) bool patches to run for ``tokens`` (None = all of them).

    Raises:
        ConfigError: unknown ``tokens``.
    """
    if tokens not in TOKEN_CHOICES:
        raise ConfigError(f"backbone.tokens {tokens!r} is unknown; expected one of {TOKEN_CHOICES}")
    if tokens == "all":
        return None
    covered = object_patches(face_ids, patch_size)
    return covered | sampled_patches(pixels, visible, image_size, covered.shape[1:], mode)
