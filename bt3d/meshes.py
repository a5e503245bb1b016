"""Meshes as people have them: any format trimesh reads, scenes flattened, any scale.

:func:`load_mesh` reads ``.obj``, ``.ply``, ``.stl``, ``.off``, ``.glb``/``.gltf`` (and the
other mesh formats trimesh knows) into a :class:`bt3d.structures.Mesh` in the file's own
frame and units; a scene (glTF, multi-object OBJ) is flattened with its node transforms
applied. :func:`content_hash` identifies a mesh by its geometry, so caches survive renames
and format conversions that keep vertices and faces. :func:`snap_landmarks` puts named
landmarks (:mod:`bt3d.labels`) on the nearest sampled surface point and refuses those too
far from the surface; :func:`landmark_ids` numbers landmark names across shapes.

Scale is left alone here: the feature pipeline renders each shape scaled to a unit
bounding-box diagonal (``normalise=True``) and geodesics are normalised per shape, so results
stay in the file's units. Tolerances are relative to the bounding-box diagonal.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bt3d.errors import DataError
from bt3d.io import check_surface
from bt3d.labels import Landmarks
from bt3d.structures import Mesh

# What trimesh can read as triangles (scene formats included); other files in a folder
# (textures, .mtl, labels) are not meshes.
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf", ".dae", ".3mf", ".xaml")


def mesh_suffixes() -> tuple[str, ...]:
    """Suffixes of the mesh formats the installed trimesh reads (a subset of MESH_SUFFIXES)."""
    import trimesh

    known = {f".{f}" for f in trimesh.available_formats()}
    return tuple(s for s in MESH_SUFFIXES if s in known)


def load_mesh(path: str | Path) -> Mesh:
    """Read a mesh file with trimesh into a :class:`Mesh` (file frame and units).

    Scenes are flattened (node transforms applied). Vertex colours and normals are dropped
    (shapes are rendered flat grey).

    Raises:
        DataError: one line naming the file: missing, unreadable by trimesh, no triangles,
            or degenerate (all faces of zero area).
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mesh file does not exist")
    try:
        loaded = trimesh.load(str(path), process=True)
        if isinstance(loaded, trimesh.Scene):
            loaded = loaded.to_geometry()
    except Exception as exc:  # trimesh raises many types for bad files
        message = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise DataError(f"{path}: trimesh cannot read it as a mesh ({message})") from None
    faces = getattr(loaded, "faces", None)
    if not isinstance(loaded, trimesh.Trimesh) or faces is None or len(faces) == 0:
        kind = type(loaded).__name__
        raise DataError(
            f"{path}: trimesh cannot read triangles from it (got an empty {kind}); the file "
            "is empty, broken or holds no surface"
        )
    mesh = Mesh(
        np.asarray(loaded.vertices, dtype=np.float64),
        np.asarray(loaded.faces, dtype=np.int64),
        source=str(path),
    )
    check_surface(mesh)
    return mesh


def content_hash(mesh: Mesh) -> str:
    """sha256 hex digest of the mesh's float64 vertices and int64 faces (its geometry)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(mesh.vertices, dtype="<f8").tobytes())
    digest.update(np.ascontiguousarray(mesh.faces, dtype="<i8").tobytes())
    return digest.hexdigest()


def diagonal(mesh: Mesh) -> float:
    """Length of the mesh's bounding-box diagonal (file units)."""
    return float(np.linalg.norm(mesh.vertices.max(axis=0) - mesh.vertices.min(axis=0)))


def closest_surface(
    mesh: Mesh, query: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest surface points of (Q, 3) queries: ``(points (Q, 3), distances (Q,), faces
    (Q,) int64, barycentrics (Q, 3))``."""
    import trimesh

    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    q = np.asarray(query, dtype=np.float64).reshape(-1, 3)
    points, distances, faces = trimesh.proximity.closest_point(tm, q)
    faces = np.asarray(faces, dtype=np.int64)
    uv = trimesh.triangles.points_to_barycentric(tm.triangles[faces], points)
    return np.asarray(points), np.asarray(distances), faces, np.asarray(uv)


@dataclass(frozen=True)
class SnappedLandmarks:
    """Landmarks of one shape put on its sampled points.

    Attributes:
        names: (K,) landmark names.
        point_indices: (K,) int64 index of the nearest sampled point.
        snap_distances: (K,) distance from each landmark to that point, in file units.
        surface_distances: (K,) distance from each landmark to the mesh surface.
    """

    names: tuple[str, ...]
    point_indices: np.ndarray
    snap_distances: np.ndarray
    surface_distances: np.ndarray


def snap_landmarks(
    mesh: Mesh, points: np.ndarray, landmarks: Landmarks, tolerance: float
) -> SnappedLandmarks:
    """Put each landmark on the nearest of the shape's sampled points.

    Args:
        mesh: the shape (file frame).
        points: (N, 3) points sampled on its surface.
        landmarks: named positions from a labels file.
        tolerance: largest allowed distance of a landmark from the surface, as a fraction
            of the mesh's bounding-box diagonal.

    Raises:
        DataError: naming the labels file, the point and its distance when a landmark lies
            farther than ``tolerance * diagonal`` from the surface (wrong mesh, units or
            frame).
    """
    diag = diagonal(mesh)
    _, surface, _, _ = closest_surface(mesh, landmarks.xyz)
    for name, dist in zip(landmarks.names, surface, strict=True):
        if dist > tolerance * diag:
            raise DataError(
                f"{landmarks.source}: point {name!r} lies {dist:.4g} from the surface of "
                f"{mesh.source} ({dist / diag:.3f} of its diagonal, tolerance {tolerance}); "
                "is it labelled on this mesh, in the same units and frame?"
            )
    pts = np.asarray(points, dtype=np.float64)
    gaps = np.linalg.norm(landmarks.xyz[:, None, :] - pts[None, :, :], axis=2)
    nearest = gaps.argmin(axis=1)
    return SnappedLandmarks(
        names=landmarks.names,
        point_indices=nearest.astype(np.int64),
        snap_distances=gaps[np.arange(len(nearest)), nearest],
        surface_distances=np.asarray(surface, dtype=np.float64),
    )


def landmark_ids(labelled: Sequence[Landmarks]) -> tuple[list[str], dict[str, str]]:
    """Number landmark names consistently across labelled shapes.

    Returns:
        ``(names, seen_once)``: every name, sorted (a name's semantic id is its position),
        and, when there are several labelled shapes, the names found on only one of them
        mapped to that shape's labels file (likely typos; a name missing on some shapes is
        otherwise fine).
    """
    counts = Counter(name for marks in labelled for name in set(marks.names))
    names = sorted(counts)
    seen_once: dict[str, str] = {}
    if len(labelled) > 1:
        for marks in labelled:
            seen_once.update({n: marks.source for n in marks.names if counts[n] == 1})
    return names, dict(sorted(seen_once.items()))


__all__ = [
    "MESH_SUFFIXES",
    "SnappedLandmarks",
    "closest_surface",
    "content_hash",
    "diagonal",
    "landmark_ids",
    "load_mesh",
    "mesh_suffixes",
    "snap_landmarks",
]
