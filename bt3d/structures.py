"""Plain data containers shared by every stage: a triangle mesh and a shape's keypoints.

They hold numpy arrays only (no torch), validate their shapes on construction and raise
:class:`bt3d.errors.DataError` naming ``source`` (usually the file they came from).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bt3d.errors import DataError


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh.

    Attributes:
        vertices: (V, 3) float64 vertex positions.
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside.
        vertex_colors: (V, 3) uint8 RGB, or None.
        vertex_normals: (V, 3) float64, or None.
        source: where the mesh came from (a path, or a description), used in error messages.
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray | None = None
    vertex_normals: np.ndarray | None = None
    source: str = "<mesh>"

    def __post_init__(self) -> None:
        v = np.asarray(self.vertices, dtype=np.float64)
        f = np.asarray(self.faces)
        if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
            raise DataError(
                f"{self.source}: vertices must be a non-empty (V, 3) array, got {v.shape}"
            )
        if not np.isfinite(v).all():
            bad = int(np.flatnonzero(~np.isfinite(v).all(axis=1))[0])
            raise DataError(
                f"{self.source}: vertex {bad} has a non-finite coordinate {v[bad].tolist()}"
            )
        if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
            raise DataError(f"{self.source}: faces must be a non-empty (F, 3) array, got {f.shape}")
        if not np.issubdtype(f.dtype, np.integer):
            raise DataError(f"{self.source}: face indices must be integers, got {f.dtype}")
        f = f.astype(np.int64)
        if f.min() < 0 or f.max() >= len(v):
            raise DataError(
                f"{self.source}: face indices must lie in [0, {len(v) - 1}], "
                f"found range [{f.min()}, {f.max()}]"
            )
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", f)
        if self.vertex_colors is not None:
            c = np.asarray(self.vertex_colors)
            if c.shape != v.shape:
                raise DataError(f"{self.source}: vertex_colors must be {v.shape}, got {c.shape}")
            object.__setattr__(self, "vertex_colors", c.astype(np.uint8))
        if self.vertex_normals is not None:
            n = np.asarray(self.vertex_normals, dtype=np.float64)
            if n.shape != v.shape:
                raise DataError(f"{self.source}: vertex_normals must be {v.shape}, got {n.shape}")
            object.__setattr__(self, "vertex_normals", n)

    @property
    def triangles(self) -> np.ndarray:
        """(F, 3, 3) float64 corner positions of every face."""
        return self.vertices[self.faces]


@dataclass(frozen=True)
class ShapeAnnotation:
    """The keypoints annotated on one shape (one record of a KeypointNet annotation file).

    Attributes:
        class_id: ShapeNet synset id, e.g. ``"03001627"``.
        model_id: ShapeNet model id.
        semantic_ids: (K,) int64 semantic id of each keypoint.
        point_indices: (K,) int64 index of each keypoint in the shape's point cloud.
        xyz: (K, 3) float64 keypoint positions.
        face_indices: (K,) int64 mesh face each keypoint lies on.
        face_uvs: (K, 3) float64 barycentric coordinates on that face.
        symmetries: the record's ``symmetries`` entry, as stored in the JSON.
        source: file the record came from, for error messages.
    """

    class_id: str
    model_id: str
    semantic_ids: np.ndarray
    point_indices: np.ndarray
    xyz: np.ndarray
    face_indices: np.ndarray
    face_uvs: np.ndarray
    symmetries: dict[str, Any] = field(default_factory=dict)
    source: str = "<annotation>"

    def __post_init__(self) -> None:
        k = len(np.asarray(self.semantic_ids))
        shapes = {
            "semantic_ids": (k,),
            "point_indices": (k,),
            "xyz": (k, 3),
            "face_indices": (k,),
            "face_uvs": (k, 3),
        }
        for name, shape in shapes.items():
            value = np.asarray(getattr(self, name))
            if value.shape != shape:
                raise DataError(
                    f"{self.source}: model {self.model_id}: {name} must have shape {shape}, "
                    f"got {value.shape}"
                )
            dtype = np.float64 if name in ("xyz", "face_uvs") else np.int64
            object.__setattr__(self, name, value.astype(dtype))
        if not np.isfinite(self.xyz).all():
            raise DataError(f"{self.source}: model {self.model_id}: keypoint xyz is not finite")

    @property
    def num_keypoints(self) -> int:
        return len(self.semantic_ids)
