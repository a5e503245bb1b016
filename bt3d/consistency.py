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


def check_points(
    reference: Mesh | ShapeAnnotation,
    points: np.ndarray,
    points_source: str | os.PathLike[str],
    tolerance: float = DEFAULT_TOLERANCE,
) -> float:
    """Raise DataError naming both files unless a point cloud agrees with its shape's mesh or
    its keypoint annotation, within ``tolerance`` times a bounding-box diagonal:

    - a :class:`Mesh`: every point lies on its surface (relative to the mesh's diagonal);
    - a :class:`ShapeAnnotation`: every keypoint's ``xyz`` is at its ``point_index`` of
      ``points`` (relative to the points' diagonal); else the indices refer to another
      point cloud.

    Args:
        reference: the shape's mesh (``source`` names its file) or its annotation (K
            keypoints with ``xyz`` (K, 3) and ``point_indices`` (K,)).
        points: (N, 3) the point cloud, in the mesh's frame and units.
        points_source: the point cloud's file, for the message.
        tolerance: largest allowed distance, relative to the diagonal.

    Returns:
        The largest relative distance found (0 for an annotation without keypoints).
    """
    if isinstance(reference, Mesh):
        gaps, diagonal = surface_distances(reference, points), _diagonal(reference.vertices)
    else:
        _check_indices(reference, len(points), points_source)
        if not len(reference.point_indices):
            return 0.0
        gaps = np.linalg.norm(points[reference.point_indices] - reference.xyz, axis=1)
        diagonal = _diagonal(points)
    worst = int(np.argmax(gaps))
    relative = float(gaps[worst] / diagonal) if diagonal > 0 else float(gaps[worst] > 0 and np.inf)
    if not relative <= tolerance:
        raise DataError(_far(reference, points_source, worst, gaps[worst], diagonal, tolerance))
    return relative


def _check_indices(
    annotation: ShapeAnnotation, n_points: int, points_source: str | os.PathLike[str]
) -> None:
    too_big = annotation.point_indices >= n_points
    if too_big.any():
        k = int(np.argmax(too_big))
        raise DataError(
            f"{annotation.source}: model {annotation.model_id} keypoint {k}: point_index "
            f"{annotation.point_indices[k]} out of range for the {n_points} points of "
            f"{points_source}"
        )


def _far(
    reference: Mesh | ShapeAnnotation,
    points_source: str | os.PathLike[str],
    worst: int,
    gap: float,
    diagonal: float,
    tolerance: float,
) -> str:
    """The message of a point (mesh) or keypoint (annotation) farther than allowed."""
    if isinstance(reference, Mesh):
        return (
            f"{points_source} does not lie on {reference.source}: point {worst} is "
            f"{gap:.4g} from the surface, {gap / diagonal:.2%} of the mesh's diagonal "
            f"{diagonal:.4g} (tolerance {tolerance:.2%}, dataset.surface_tolerance); the point "
            "cloud must be sampled from this mesh, in the same frame and units"
        )
    return (
        f"{reference.source}: model {reference.model_id} keypoint {worst}: xyz "
        f"{np.round(reference.xyz[worst], 4).tolist()} is {gap:.4g} away from "
        f"point {reference.point_indices[worst]} of {points_source} "
        f"({gap / diagonal:.2%} of its diagonal): the annotation's point indices "
        "refer to another point cloud"
    )
