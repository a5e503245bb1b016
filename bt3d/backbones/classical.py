"""``classical``: weights-free DAISY descriptors sampled at the centres of the 14 px patches.

It exists so that the gain from foundation-model features is measured against a hand-made
dense descriptor of the same render, on the same patch grid, through the same pipeline.

Exactly what is computed for images (V, 3, H, W) in [0, 1] (defaults in brackets):

1. Grey image g = mean of the three channels (the renders are grey already).
2. g is padded by mirror reflection (``numpy.pad(mode="symmetric")``) so that every patch
   centre has its full DAISY support: ``radius - c`` rows/columns before and enough after,
   with c = patch // 2 [7].
3. On the padded image, DAISY as ``skimage.feature.daisy`` computes it (Tola et al. 2010):
   forward differences dx, dy (0 in the last column/row), magnitude m and angle a; for each of
   O [8] orientations o_i = 2 pi i / O - pi, a map m * exp((O / pi) cos(a - o_i)); each map
   smoothed by Gaussians (``scipy.ndimage`` "reflect" border, truncate 4) with sigma
   radius / (2 rings) * [1, 1, 2] [3.75, 3.75, 7.5] for the centre and the two rings.
4. At each patch centre (row 14 i + 7, column 14 j + 7 of the original image): the centre
   histogram plus the histograms at `histograms` [6] points on each of `rings` [2] circles of
   radius radius * (r + 1) / rings [7.5, 15] px (offsets rounded like skimage) -> O *
   (rings * histograms + 1) [104] values, L1-normalised (``normalization="l1"``, +1e-10).

The result equals ``skimage.feature.daisy(padded, step=14, radius=15, rings=2, histograms=6,
orientations=8)`` (tests check this), computed batched with torch convolutions, and is returned
as (V, 104, H // 14, W // 14) float32.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bt3d.errors import BackboneError

NAME = "classical"


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """(2r+1,) normalised Gaussian, r = int(truncate * sigma + 0.5), as scipy.ndimage uses."""
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * x**2 / sigma**2)
    return k / k.sum()


def smoothing_matrix(positions: np.ndarray, size: int, kernel: np.ndarray) -> np.ndarray:
    """(P, size) weights of a 1D Gaussian filter with scipy's "reflect" border, evaluated only
    at ``positions`` (so ``M @ x`` equals ``scipy.ndimage.correlate1d(x, kernel)[positions]``).
    """
    r = len(kernel) // 2
    source = np.pad(np.arange(size), r, mode="symmetric")
    matrix = np.zeros((len(positions), size))
    for row, y in enumerate(positions):
        np.add.at(matrix[row], source[y : y + 2 * r + 1], kernel)
    return matrix


def symmetric_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Pad the last two dims like ``numpy.pad(mode="symmetric")`` (edge pixel repeated)."""
    rows = np.pad(np.arange(x.shape[-2]), (top, bottom), mode="symmetric")
    cols = np.pad(np.arange(x.shape[-1]), (left, right), mode="symmetric")
    x = x.index_select(-2, torch.from_numpy(rows).to(x.device))
    return x.index_select(-1, torch.from_numpy(cols).to(x.device))


def ring_offsets(radius: float, rings: int, histograms: int) -> list[list[tuple[int, int]]]:
    """(row, col) offsets of the histogram points of each ring, rounded like skimage."""
    radii = [radius * (i + 1) / rings for i in range(rings)]
    thetas = [2 * math.pi * j / histograms for j in range(histograms)]
    return [
        [(int(round(r * math.sin(t))), int(round(r * math.cos(t)))) for t in thetas] for r in radii
    ]


class DaisyBackbone(nn.Module):
    """Dense DAISY on the patch grid; see the module docstring for the exact definition."""

    def __init__(
        self,
        patch_size: int = 14,
        radius: int = 15,
        rings: int = 2,
        histograms: int = 6,
        orientations: int = 8,
    ) -> None:
        super().__init__()
        if radius < patch_size // 2:
            raise BackboneError(f"classical: radius {radius} must be >= patch_size // 2")
        self.name = NAME
        self.patch_size = patch_size
        self.radius = radius
        self.orientations = orientations
        self.offsets = ring_offsets(radius, rings, histograms)
        self.feature_dim = orientations * (rings * histograms + 1)
        sigmas = [radius * (i + 1) / (2 * rings) for i in range(rings)]
        self.sigmas = [sigmas[0], *sigmas]  # centre, ring 1, ring 2, ...
        angles = torch.tensor(
            [2 * math.pi * o / orientations - math.pi for o in range(orientations)]
        )
        self.register_buffer("angles", angles.view(1, -1, 1, 1), persistent=False)

    def _sample(
        self,
        hist: torch.Tensor,
        sigma: float,
        rows: np.ndarray,
        cols: np.ndarray,
        offsets: list[tuple[int, int]],
    ) -> torch.Tensor:
        """Smoothed histograms at (rows + dr, cols + dc) per offset: (V, O * len(offsets), h, w).

        The Gaussian is applied only where it is sampled, as two matrix products
        ``M_rows @ hist @ M_cols^T``.
        """
        kernel = gaussian_kernel(sigma)
        need_r = np.unique(np.concatenate([rows + dr for dr, _ in offsets]))
        need_c = np.unique(np.concatenate([cols + dc for _, dc in offsets]))
        as_tensor = {"dtype": hist.dtype, "device": hist.device}
        m_r = torch.as_tensor(smoothing_matrix(need_r, hist.shape[-2], kernel), **as_tensor)
        m_c = torch.as_tensor(smoothing_matrix(need_c, hist.shape[-1], kernel), **as_tensor)
        smooth = m_r @ hist @ m_c.T  # (V, O, len(need_r), len(need_c))
        parts = []
        for dr, dc in offsets:
            ri = torch.from_numpy(np.searchsorted(need_r, rows + dr)).to(hist.device)
            ci = torch.from_numpy(np.searchsorted(need_c, cols + dc)).to(hist.device)
            parts.append(smooth.index_select(2, ri).index_select(3, ci))
        return torch.cat(parts, dim=1)

    def _histograms(self, grey: torch.Tensor) -> torch.Tensor:
        """(V, 1, H, W) -> (V, O, H, W) magnitude-weighted soft orientation maps."""
        dx = F.pad(grey[..., :, 1:] - grey[..., :, :-1], (0, 1, 0, 0))
        dy = F.pad(grey[..., 1:, :] - grey[..., :-1, :], (0, 0, 0, 1))
        magnitude = torch.sqrt(dx**2 + dy**2)
        angle = torch.atan2(dy, dx)
        kappa = self.orientations / math.pi
        return torch.exp(kappa * torch.cos(angle - self.angles)) * magnitude

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(V, 3, H, W) in [0, 1] -> (V, feature_dim, H // p, W // p) float32."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise BackboneError(f"{NAME}: expected images (V, 3, H, W), got {tuple(images.shape)}")
        with torch.autocast(images.device.type, enabled=False):  # stays float32 under autocast
            return self._describe(images.float())

    def _describe(self, images: torch.Tensor) -> torch.Tensor:
        p, r = self.patch_size, self.radius
        height, width = images.shape[-2:]
        h, w = height // p, width // p
        c0 = p // 2
        last_row, last_col = c0 + p * (h - 1), c0 + p * (w - 1)
        grey = images.float().mean(dim=1, keepdim=True)
        grey = symmetric_pad(
            grey,
            r - c0,
            max(0, last_row + r + 1 - height),
            r - c0,
            max(0, last_col + r + 1 - width),
        )
        hist = self._histograms(grey)
        centre_rows = r + p * np.arange(h)
        centre_cols = r + p * np.arange(w)
        groups: list[tuple[float, list[tuple[int, int]]]] = []
        for sigma, offsets in zip(self.sigmas, [[(0, 0)], *self.offsets], strict=True):
            if groups and groups[-1][0] == sigma:  # centre and ring 1 share a sigma
                groups[-1][1].extend(offsets)
            else:
                groups.append((sigma, list(offsets)))
        parts = [self._sample(hist, s, centre_rows, centre_cols, offs) for s, offs in groups]
        desc = torch.cat(parts, dim=1) + 1e-10
        return (desc / desc.sum(dim=1, keepdim=True)).float()


def build(
    name: str, device: torch.device | str, checkpoint: str | None, layer: str | None
) -> DaisyBackbone:
    """The DAISY backbone; it has no weights or layers (``layer`` may be None or "last_norm")."""
    for setting, value in (("backbone.checkpoint", checkpoint), ("backbone.layer", layer)):
        if value not in (None, "last_norm") or (setting == "backbone.checkpoint" and value):
            raise BackboneError(
                f"{setting}={value!r} is meaningless for the weights-free {NAME!r} backbone; "
                f"set {setting}: null"
            )
    return DaisyBackbone().to(device).eval()
