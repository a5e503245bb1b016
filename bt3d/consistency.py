"""Checks that the files of one shape agree: its point cloud lies on its mesh, in the same
frame and units, and its keypoint annotation refers to that point cloud.

A point cloud in metres beside a mesh in millimetres, or another shape's point cloud, would
otherwise give silently wrong (often perfect-looking) metrics. Distances are relative to the
bounding-box diagonal, so the checks hold at any scale. Real KeypointNet shapes are far inside
the default tolerance (the shared sample chair: largest point-to-surface distance 7e-7 of the
diagonal, annotated xyz within 5e-7 of their points).
"""

from __future__ import annotations

import os

import numpy as np

from bt3d.errors import DataError
from bt3d.structures import Mesh, ShapeAnnotation
from bt3d.visibility import surface_distances

DEFAULT_TOLERANCE = 0.01  # of the bounding-box diagonal


def _diagonal(points: np.ndarray) -> float:
    return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))


def check_points_on_mesh(
    mesh: Mesh,
    points: np.ndarray,
    points_source: str | os.PathLike[str],
    tolerance: float = DEFAULT_TOLERANCE,
) -> float:
    """Raise DataError naming both files when a point lies farther than ``tolerance`` times
    the mesh's bounding-box diagonal from its surface.

    Args:
        mesh: the shape's mesh (``mesh.source`` names its file).
        points: (N, 3) its point cloud, in the mesh's frame and units.
        points_source: the point cloud's file, for the message.
        tolerance: largest allowed distance, relative to the mesh's diagonal.

    Returns:
        The largest relative distance found.
    """
    distances = surface_distances(mesh, points)
    diagonal = _diagonal(mesh.vertices)
    worst = int(np.argmax(distances))
    relative = float(distances[worst] / diagonal)
    if not relative <= tolerance:
        raise DataError(
            f"{points_source} does not lie on {mesh.source}: point {worst} is "
            f"{distances[worst]:.4g} from the surface, {relative:.2%} of the mesh's diagonal "
            f"{diagonal:.4g} (tolerance {tolerance:.2%}, dataset.surface_tolerance); the point "
            "cloud must be sampled from this mesh, in the same frame and units"
        )
    return relative


def check_annotation_points(
    annotation: ShapeAnnotation,
    points: np.ndarray,
    points_source: str | os.PathLike[str],
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Raise DataError when an annotated keypoint's ``xyz`` is not at its ``point_index`` of
    ``points`` (within ``tolerance`` times the points' bounding-box diagonal): the indices
    then refer to another point cloud.

    Args:
        annotation: K keypoints with ``xyz`` (K, 3) and ``point_indices`` (K,).
        points: (N, 3) the point cloud the indices are used with.
        points_source: its file, for the message.
    """
    if not len(annotation.point_indices):
        return
    too_big = annotation.point_indices >= len(points)
    if too_big.any():
        k = int(np.argmax(too_big))
        raise DataError(
            f"{annotation.source}: model {annotation.model_id} keypoint {k}: point_index "
            f"{annotation.point_indices[k]} out of range for the {len(points)} points of "
            f"{points_source}"
        )
    gaps = np.linalg.norm(points[annotation.point_indices] - annotation.xyz, axis=1)
    diagonal = _diagonal(points)
    worst = int(np.argmax(gaps))
    if not gaps[worst] <= tolerance * diagonal:
        raise DataError(
            f"{annotation.source}: model {annotation.model_id} keypoint {worst}: xyz "
            f"{np.round(annotation.xyz[worst], 4).tolist()} is {gaps[worst]:.4g} away from "
            f"point {annotation.point_indices[worst]} of {points_source} "
            f"({gaps[worst] / diagonal:.2%} of its diagonal): the annotation's point indices "
            "refer to another point cloud"
        )
