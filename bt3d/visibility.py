"""Which points of a shape each rendered view sees (ALGORITHM §1.4).

A point is visible in a view when its nearest mesh face, or a face sharing an edge with that
face, is seen at some pixel of the view. Faces share an edge when they share two vertex
indices (as in the reference code; duplicated vertices at the same position do not connect).

Differences from the reference code (``check_visible_points``), on purpose:

* nearest faces are exact point-triangle distances in float64 (the reference uses PyTorch3D's
  float32 ``point_face_dist_forward``, which measures triangles smaller than 1e-5 in area to
  their edges only); ties go to the lowest face index;
* by default only the face drawn at a pixel counts. The reference rasterises 5 faces per pixel
  and counts all of them, i.e. up to 4 occluded layers too (pass ``Rasterization.layers`` from
  ``render(..., faces_per_pixel=5)`` to do the same), and its ``pix_to_face % F`` turns
  background (-1) into face ``F - 1`` (not reproduced).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from bt3d.errors import DataError
from bt3d.structures import Mesh

_SEED_NEIGHBOURS = 8  # centroids whose exact distances bound a point's nearest-face distance
_SPLIT_FACTOR = 2.0  # faces with a bounding radius above this x the median go to the box test
_DENSE_BLOCK = 1 << 22  # point-face box tests per block


def _segment_sqdist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M,) squared distance from ``p`` to the segments ``a``-``b``; all (M, 3)."""
    ab = b - a
    denom = np.einsum("ij,ij->i", ab, ab)
    t = np.einsum("ij,ij->i", p - a, ab) / np.where(denom > 0, denom, 1.0)
    t = np.clip(t, 0.0, 1.0)
    diff = p - (a + t[:, None] * ab)
    return np.einsum("ij,ij->i", diff, diff)


def point_triangle_sqdist(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Exact squared distance from each point to its triangle.

    Args:
        points: (M, 3).
        triangles: (M, 3, 3) corners.

    Returns:
        (M,) float64: the distance to the plane when the point projects inside the triangle,
        else to the nearest edge (degenerate triangles: to their edges).
    """
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    n = np.cross(b - a, c - a)
    nn = np.einsum("ij,ij->i", n, n)
    inside = nn > 0
    for u, v in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("ij,ij->i", np.cross(v - u, points - u), n) >= 0
    plane = np.einsum("ij,ij->i", points - a, n) ** 2 / np.where(nn > 0, nn, 1.0)
    edges = np.minimum(
        np.minimum(_segment_sqdist(points, a, b), _segment_sqdist(points, b, c)),
        _segment_sqdist(points, c, a),
    )
    return np.where(inside, np.minimum(plane, edges), edges)


def _best_per_point(point: np.ndarray, face: np.ndarray, sqdist: np.ndarray, n: int) -> np.ndarray:
    """For candidate pairs (M,), the face with the least distance for each of ``n`` points,
    ties to the lowest face index."""
    order = np.lexsort((face, sqdist, point))
    first = np.ones(len(order), dtype=bool)
    first[1:] = point[order[1:]] != point[order[:-1]]
    best = np.full(n, -1, dtype=np.int64)
    best[point[order[first]]] = face[order[first]]
    return best


def nearest_faces(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    """Index of the mesh face nearest to each point (exact point-triangle distance).

    Every face within an upper bound ``b`` of a point's nearest distance (the distance to its
    nearest vertex, or to the faces of its ``_SEED_NEIGHBOURS`` nearest centroids) is measured
    exactly. Small faces (bounding radius ``r <= split``) are found with a KD-tree over
    centroids (centroid within ``b + split``); larger ones (long thin ShapeNet slats) by testing
    their bounding boxes against the box ``p +- b``, for every point at once.

    Args:
        mesh: F faces.
        points: (N, 3).

    Returns:
        (N,) int64 face indices; ties go to the lowest index.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise DataError(f"{mesh.source}: points must be (N, 3), got {points.shape}")
    n = len(points)
    tri = mesh.triangles
    centroid = tri.mean(axis=1)
    radius = np.linalg.norm(tri - centroid[:, None], axis=2).max(axis=1)
    bound = _distance_bound(mesh, points, centroid)

    split = min(_SPLIT_FACTOR * float(np.median(radius)), float(radius.max()))
    small = np.flatnonzero(radius <= split)
    big = np.flatnonzero(radius > split)
    pairs_p, pairs_f = [], []
    if len(small):
        lists = cKDTree(centroid[small]).query_ball_point(
            points, bound + split, return_sorted=False
        )
        counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=n)
        pairs_p.append(np.repeat(np.arange(n), counts))
        pairs_f.append(small[np.fromiter((i for x in lists for i in x), np.int64, counts.sum())])
    if len(big):
        lo, hi = tri[big].min(axis=1), tri[big].max(axis=1)
        for rows in np.array_split(np.arange(n), max(1, n * len(big) // _DENSE_BLOCK)):
            p_lo = points[rows] - bound[rows, None]
            p_hi = points[rows] + bound[rows, None]
            overlap = np.all((lo[None] <= p_hi[:, None]) & (hi[None] >= p_lo[:, None]), axis=2)
            i, j = np.nonzero(overlap)
            pairs_p.append(rows[i])
            pairs_f.append(big[j])
    p_idx, f_idx = np.concatenate(pairs_p), np.concatenate(pairs_f)
    lower = np.linalg.norm(points[p_idx] - centroid[f_idx], axis=1) - radius[f_idx]
    keep = lower <= bound[p_idx]
    p_idx, f_idx = p_idx[keep], f_idx[keep]
    d = point_triangle_sqdist(points[p_idx], tri[f_idx])
    return _best_per_point(p_idx, f_idx, d, n)


def surface_distances(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    """(N,) float64 distance from each point to the mesh surface (its nearest face)."""
    points = np.asarray(points, dtype=np.float64)
    nearest = nearest_faces(mesh, points)
    return np.sqrt(point_triangle_sqdist(points, mesh.triangles[nearest]))


def _distance_bound(mesh: Mesh, points: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    """(N,) an upper bound of each point's distance to the mesh, slightly inflated so that the
    candidate tests never drop the nearest face to rounding."""
    n = len(points)
    used = np.unique(mesh.faces)
    vertex_d, _ = cKDTree(mesh.vertices[used]).query(points)
    k = min(_SEED_NEIGHBOURS, len(centroid))
    _, seed = cKDTree(centroid).query(points, k=k)
    seed = seed.reshape(n, k)
    seed_d = point_triangle_sqdist(np.repeat(points, k, axis=0), mesh.triangles[seed.ravel()])
    bound = np.minimum(np.sqrt(seed_d.reshape(n, k).min(axis=1)), vertex_d)
    return bound * (1 + 1e-9) + 1e-12


def edge_adjacency(mesh: Mesh) -> sp.csr_matrix:
    """(F, F) sparse bool: faces sharing an edge (two vertex indices), each face with itself."""
    faces = mesh.faces
    n_faces = len(faces)
    edges = np.sort(faces[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2), axis=1)
    _, edge_id = np.unique(edges, axis=0, return_inverse=True)
    incidence = sp.csr_matrix(
        (np.ones(len(edges), dtype=np.int32), (np.repeat(np.arange(n_faces), 3), edge_id.ravel())),
        shape=(n_faces, int(edge_id.max()) + 1),
    )
    adjacency = (incidence @ incidence.T).astype(bool)
    return (adjacency + sp.eye(n_faces, dtype=bool, format="csr")).tocsr()


def faces_seen(face_ids: np.ndarray, n_faces: int) -> np.ndarray:
    """(V, F) bool: faces drawn at some pixel of each view, from ``face_ids`` (V, ...)."""
    n_views = len(face_ids)
    flat = face_ids.reshape(n_views, -1)
    if flat.size and flat.max() >= n_faces:
        raise DataError(f"face id {int(flat.max())} out of range for a mesh of {n_faces} faces")
    view, pix = np.nonzero(flat >= 0)
    seen = np.zeros(n_views * n_faces, dtype=bool)
    seen[view * n_faces + flat[view, pix]] = True
    return seen.reshape(n_views, n_faces)


def point_visibility(
    mesh: Mesh,
    points: np.ndarray,
    face_ids: np.ndarray,
    nearest: np.ndarray | None = None,
) -> np.ndarray:
    """Visibility of each point in each view (ALGORITHM §1.4).

    Args:
        mesh: the rendered mesh (F faces).
        points: (N, 3) points on its surface.
        face_ids: (V, H, W) int64 rasterised face ids, -1 = background; or (V, H, W, K) face
            layers (``Rasterization.layers``) to count K faces per pixel as the reference does.
        nearest: (N,) precomputed :func:`nearest_faces`, to share it between calls.

    Returns:
        (V, N) bool.
    """
    if nearest is None:
        nearest = nearest_faces(mesh, points)
    seen = faces_seen(face_ids, len(mesh.faces)).astype(np.float32)  # (V, F)
    near_adjacent = edge_adjacency(mesh)[:, nearest].T.tocsr().astype(np.float32)  # (N, F)
    return np.asarray(near_adjacent @ seen.T).T > 0
