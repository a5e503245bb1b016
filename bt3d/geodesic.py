"""Geodesic distances on a point cloud (ALGORITHM.md §2, §5).

The geodesic distance between two points is the length of the shortest path between them in
the point cloud's k-nearest-neighbour graph: every point is joined to its ``k`` (default 20)
nearest neighbours by an edge whose weight is their Euclidean distance, the graph is taken as
undirected (an edge exists when either end point has the other among its neighbours), and
all-pairs shortest paths are found with Dijkstra.

Two engines give bitwise the same matrix (``engine``): :func:`scipy.sparse.csgraph.dijkstra`
(``"scipy"``, the reference) and a compiled 4-ary-heap Dijkstra on the symmetrised graph,
renumbered for locality (``"native"``, :mod:`bt3d.native`, faster per thread and able to use
several threads; figures in docs/findings/speed.md). Both compute every distance as the
minimum over the graph's paths of the left-to-right IEEE double sum of its edge lengths, a
fixed point every Dijkstra reaches whatever its heap, visiting order or node numbering.
``"auto"`` takes the native one when a C compiler is available.

A point cloud made of several pieces (e.g. a chair whose legs are sampled apart from the
seat) gives a disconnected graph and infinite distances between the pieces. Two conventions
exist for them (``unreachable``):

* ``"max"`` (default): set them to the largest finite distance of the matrix. This is what
  the Back to 3D code does after ``scipy.sparse.csgraph.shortest_path``
  (wimmerth/back-to-3d-few-shot-keypoints, ``bt3d.py`` and
  ``feature_backprojection/backprojection.py``), and what ALGORITHM.md prescribes for both the
  features and the evaluation.
* ``"zero"``: set them to 0. The original KeypointNet and UKPGAN evaluation scripts called the
  old ``sklearn.utils.graph.graph_shortest_path``, which returned 0 for unreachable pairs,
  i.e. two points on separate pieces counted as a perfect match. Kept to reproduce numbers
  published with those scripts.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra, reverse_cuthill_mckee
from scipy.spatial import cKDTree

from bt3d.errors import ConfigError, DataError

UNREACHABLE_CHOICES = ("max", "zero")
ENGINE_CHOICES = ("auto", "native", "scipy")


def _checked_points(points: np.ndarray, source: str) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise DataError(f"{source}: points must be a non-empty (N, 3) array, got shape {pts.shape}")
    finite = np.isfinite(pts).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(
            f"{source}: {len(bad)} point(s) have a NaN or infinite coordinate, "
            f"first is point {int(bad[0])} = {pts[bad[0]].tolist()}"
        )
    return pts


def knn_graph(points: np.ndarray, k: int = 20, source: str = "<points>") -> csr_matrix:
    """Directed k-nearest-neighbour graph of a point cloud.

    Args:
        points: (N, 3) positions.
        k: neighbours per point (capped at N - 1).
        source: name used in error messages.

    Returns:
        (N, N) sparse matrix with, in row i, the Euclidean distances to the k nearest other
        points of point i. Duplicate points give explicit zero entries, which scipy's graph
        routines treat as edges of length 0.
    """
    pts = _checked_points(points, source)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"geodesic k must be a positive integer, got {k!r}")
    n = len(pts)
    kk = min(int(k), n - 1)
    if kk == 0:
        return csr_matrix((n, n), dtype=np.float64)
    # One neighbour more than needed: the point itself is normally the first hit, but with
    # duplicate points it may come later, so it is removed by index, not by position.
    dist, idx = cKDTree(pts).query(pts, k=kk + 1)
    not_self = idx != np.arange(n)[:, None]
    # Keep the first kk non-self neighbours of each row (rows where self was not among the
    # kk + 1 hits drop their last, farthest hit).
    keep = not_self & (np.cumsum(not_self, axis=1) <= kk)
    cols = idx[keep].reshape(n, kk)
    weights = dist[keep].reshape(n, kk)
    indptr = np.arange(0, n * kk + 1, kk)
    return csr_matrix((weights.ravel(), cols.ravel(), indptr), shape=(n, n))


def symmetric_graph(graph: csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays of the undirected version of a directed graph, both directions stored.

    An edge present in both directions keeps the shorter length, as
    ``scipy.sparse.csgraph.dijkstra(directed=False)`` does; explicit zero lengths are kept.

    Returns:
        ``(indptr (N + 1,), indices (E,), weights (E,))`` int64, int64, float64, each row's
        columns ascending.
    """
    n = graph.shape[0]
    coo = graph.tocoo()
    rows = np.concatenate([coo.row, coo.col]).astype(np.int64)
    cols = np.concatenate([coo.col, coo.row]).astype(np.int64)
    weights = np.concatenate([coo.data, coo.data]).astype(np.float64)
    key = rows * n + cols
    order = np.lexsort((weights, key))
    key, weights = key[order], weights[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, weights = key[first], weights[first]
    rows, cols = key // n, key % n
    indptr = np.searchsorted(rows, np.arange(n + 1)).astype(np.int64)
    return indptr, cols, weights


def renumbered(
    indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An undirected CSR graph renumbered by reverse Cuthill-McKee, so that neighbours get
    nearby ids (the native Dijkstra's rows then stay in cache; the distances do not depend on
    the numbering).

    Args:
        indptr: (N + 1,) row pointers; indices: (E,) columns; weights: (E,) lengths, both
            directions of every edge stored (:func:`symmetric_graph`).

    Returns:
        ``(indptr, indices, weights, order)``: the same graph with node i being the input's
        node ``order[i]``; each row's edges in the input's order.
    """
    n = len(indptr) - 1
    graph = csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n, n))
    order = reverse_cuthill_mckee(graph, symmetric_mode=True).astype(np.int64)
    new_id = np.empty(n, dtype=np.int64)
    new_id[order] = np.arange(n)
    counts = np.diff(indptr)[order]
    new_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # edge e of new row i is edge indptr[order[i]] + (e - new_indptr[i]) of the input
    edges = np.repeat(indptr[order] - new_indptr[:-1], counts) + np.arange(new_indptr[-1])
    return new_indptr, new_id[indices[edges]], weights[edges], order


def all_pairs_dijkstra(graph: csr_matrix, engine: str = "auto", threads: int = 1) -> np.ndarray:
    """(N, N) shortest-path lengths on the undirected version of ``graph`` (``inf`` if none).

    Args:
        graph: (N, N) sparse directed graph of non-negative lengths.
        engine: ``"scipy"``, ``"native"`` (raises when it cannot be built) or ``"auto"``.
        threads: threads of the native engine (scipy's runs on one).
    """
    if engine not in ENGINE_CHOICES:
        raise ConfigError(
            f"geodesic engine {engine!r} is unknown; expected one of {ENGINE_CHOICES}"
        )
    if engine != "scipy":
        from bt3d.native import dijkstra_all

        dist = dijkstra_all(*renumbered(*symmetric_graph(graph)), threads=threads)
        if dist is not None:
            return dist
        if engine == "native":
            raise ConfigError(
                "geodesic engine 'native' needs a C compiler (cc, gcc or clang, or $CC) to "
                "build bt3d/native/dijkstra.c; install one or use engine 'scipy'"
            )
    return dijkstra(graph, directed=False)


def geodesic_matrix(
    points: np.ndarray,
    k: int = 20,
    unreachable: str = "max",
    source: str = "<points>",
    engine: str = "auto",
    threads: int = 1,
) -> np.ndarray:
    """All-pairs geodesic distances on the undirected kNN graph of a point cloud.

    Args:
        points: (N, 3) positions (a KeypointNet cloud has N = 2048).
        k: neighbours per point in the graph (20 in the reference).
        unreachable: ``"max"`` sets distances between disconnected pieces to the largest
            finite distance (Back to 3D); ``"zero"`` sets them to 0 (the old scikit-learn
            routine of the KeypointNet/UKPGAN scripts). See the module docstring.
        source: name of the cloud (file, model id) used in error messages.
        engine, threads: see :func:`all_pairs_dijkstra` (every engine gives the same bits).

    Returns:
        (N, N) float64, zero diagonal, not normalised; symmetric up to rounding only
        (d[i, j] and d[j, i] sum the same path in opposite orders).

    Raises:
        DataError: points not (N, 3) or with NaN/infinite coordinates.
        ConfigError: unknown ``unreachable`` or a non-positive ``k``.
    """
    if unreachable not in UNREACHABLE_CHOICES:
        raise ConfigError(
            f"geodesic unreachable={unreachable!r} is unknown; expected one of "
            f"{UNREACHABLE_CHOICES}"
        )
    graph = knn_graph(points, k=k, source=source)
    dist = all_pairs_dijkstra(graph, engine=engine, threads=threads)
    infinite = np.isinf(dist)
    if infinite.any():
        if unreachable == "zero":
            dist[infinite] = 0.0
        else:
            dist[infinite] = dist[~infinite].max()
    return dist


def normalise_geodesic(dist: np.ndarray, source: str = "<geodesic>") -> np.ndarray:
    """Divide a geodesic matrix by its maximum, so that the largest distance is 1.

    Args:
        dist: (N, N) distances, finite and non-negative.
        source: name used in error messages.

    Returns:
        (N, N) array of the same floating dtype (float64 for integer input).

    Raises:
        DataError: the matrix is not square, holds NaN/infinite/negative values, or is all
            zero (a single point, or only duplicate points), so it cannot be normalised.
    """
    d = np.asarray(dist)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise DataError(f"{source}: geodesic matrix must be square (N, N), got {d.shape}")
    if not np.issubdtype(d.dtype, np.floating):
        d = d.astype(np.float64)
    if not np.isfinite(d).all():
        raise DataError(f"{source}: geodesic matrix holds NaN or infinite values")
    if d.size and d.min() < 0:
        raise DataError(f"{source}: geodesic matrix holds negative distances (min {d.min()})")
    top = d.max() if d.size else 0.0
    if top <= 0:
        raise DataError(
            f"{source}: geodesic matrix is all zero (shape {d.shape}); cannot normalise it"
        )
    return d / top
