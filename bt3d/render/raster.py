"""What every render backend returns, and the shading constants they share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GREY = 0.7
AMBIENT = 0.5
DIFFUSE = 0.3
SPECULAR = 0.2
SHININESS = 64.0
BACKGROUND = 1.0
_NORMAL_EPS = 1e-6  # eps of PyTorch3D's F.normalize in the lighting code


@dataclass(frozen=True)
class Rasterization:
    """What a backend returns for V views of an (H, W) image.

    Attributes:
        face_ids: (V, H, W) int64 index of the mesh face seen at each pixel centre, -1 for
            background.
        depth: (V, H, W) float32 view-space depth of that hit (PyTorch3D's ``zbuf``), inf for
            background.
        images: (V, 3, H, W) float32 RGB in [0, 1].
        layers: (V, H, W, K) int64 the K nearest faces along each pixel's ray (first = face_ids,
            -1 where there are fewer) when rendered with ``faces_per_pixel = K > 1``, else None.
    """

    face_ids: np.ndarray
    depth: np.ndarray
    images: np.ndarray
    layers: np.ndarray | None = None
