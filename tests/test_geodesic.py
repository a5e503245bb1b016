"""Geodesic distances against a brute-force kNN graph and a hand-written Dijkstra."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from bt3d.errors import ConfigError, DataError
from bt3d.geodesic import (
    geodesic_matrix,
    knn_graph,
    normalise_geodesic,
    renumbered,
    symmetric_graph,
)


def brute_force_geodesic(points: np.ndarray, k: int) -> np.ndarray:
    """All-pairs shortest paths, infinities kept: full distance matrix, kNN by argsort."""
    n = len(points)
    euclid = np.linalg.norm(points[:, None] - points[None], axis=-1)
    adjacency: list[dict[int, float]] = [{} for _ in range(n)]
    for i in range(n):
        others = [j for j in np.argsort(euclid[i], kind="stable") if j != i][:k]
        for j in others:
            adjacency[i][int(j)] = euclid[i, j]
            adjacency[int(j)][i] = euclid[i, j]
    out = np.full((n, n), np.inf)
    for s in range(n):
        out[s, s] = 0.0
        heap = [(0.0, s)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > out[s, u]:
                continue
            for v, w in adjacency[u].items():
                if d + w < out[s, v]:
                    out[s, v] = d + w
                    heapq.heappush(heap, (d + w, v))
    return out


def two_blobs(rng: np.random.Generator, n: int = 30) -> np.ndarray:
    a = rng.normal(size=(n, 3)) * 0.05
    b = rng.normal(size=(n, 3)) * 0.05 + np.array([5.0, 0.0, 0.0])
    return np.concatenate([a, b])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 8])
def test_matches_brute_force_dijkstra(seed: int, k: int) -> None:
    points = np.random.default_rng(seed).random((40, 3))
    expected = brute_force_geodesic(points, k)
    got = geodesic_matrix(points, k=k, unreachable="max")
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-12)
    if not finite.all():  # k=1 may split the cloud: those entries become the finite maximum
        np.testing.assert_allclose(got[~finite], expected[finite].max())
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, got.T)
    assert np.all(np.diag(got) == 0)


def test_disconnected_cloud_max_and_zero() -> None:
    points = two_blobs(np.random.default_rng(3))
    expected = brute_force_geodesic(points, 5)
    across = ~np.isfinite(expected)
    # Both blobs hold 30 points and k=5, so no edge crosses the 5-unit gap.
    assert across[:30, 30:].all() and np.isfinite(expected[:30, :30]).all()
    d_max = geodesic_matrix(points, k=5)
    d_zero = geodesic_matrix(points, k=5, unreachable="zero")
    largest = expected[~across].max()
    assert np.all(d_max[across] == largest)
    assert np.all(d_zero[across] == 0.0)
    np.testing.assert_allclose(d_max[~across], expected[~across], rtol=1e-12)
    np.testing.assert_allclose(d_zero[~across], expected[~across], rtol=1e-12)


def test_path_along_a_line_sums_edges() -> None:
    # Points on a line with growing gaps: the undirected 1-NN graph is the chain 0-1-2-3.
    x = np.array([0.0, 1.0, 3.0, 6.0])
    points = np.stack([x, np.zeros(4), np.zeros(4)], axis=1)
    d = geodesic_matrix(points, k=1)
    assert d[0, 3] == pytest.approx(6.0)
    assert d[1, 3] == pytest.approx(5.0)


def test_duplicate_points_are_at_distance_zero() -> None:
    rng = np.random.default_rng(4)
    base = rng.random((10, 3))
    points = np.concatenate([base, base[:3], base[:3]])  # points 0..2 three times each
    graph = knn_graph(points, k=2)
    assert graph.shape == (16, 16)
    assert np.all(np.diff(graph.indptr) == 2)
    assert np.all(graph.indices != np.repeat(np.arange(16), 2))  # no self loops
    d = geodesic_matrix(points, k=2)
    assert d[0, 10] == 0.0 and d[0, 13] == 0.0
    np.testing.assert_allclose(d[10], d[0])


def test_k_larger_than_cloud_and_single_point() -> None:
    points = np.random.default_rng(5).random((4, 3))
    d = geodesic_matrix(points, k=20)
    euclid = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.testing.assert_allclose(d, brute_force_geodesic(points, 3))
    assert np.all(d <= euclid + 1e-12)
    assert geodesic_matrix(np.zeros((1, 3))).tolist() == [[0.0]]


def test_normalise() -> None:
    d = geodesic_matrix(np.random.default_rng(6).random((20, 3)))
    n = normalise_geodesic(d)
    assert n.max() == 1.0
    np.testing.assert_allclose(n * d.max(), d)
    assert normalise_geodesic(d.astype(np.float16)).dtype == np.float16
    with pytest.raises(DataError, match="all zero"):
        normalise_geodesic(np.zeros((3, 3)))
    with pytest.raises(DataError, match="square"):
        normalise_geodesic(np.ones((3, 2)))
    with pytest.raises(DataError, match="infinite"):
        normalise_geodesic(np.array([[0.0, np.inf], [np.inf, 0.0]]))


def test_input_validation() -> None:
    points = np.random.default_rng(7).random((10, 3))
    points[4, 1] = np.nan
    with pytest.raises(DataError, match=r"chair\.pcd: 1 point\(s\).*point 4"):
        geodesic_matrix(points, source="chair.pcd")
    points[4, 1] = np.inf
    with pytest.raises(DataError, match="infinite"):
        geodesic_matrix(points)
    with pytest.raises(DataError, match=r"\(N, 3\)"):
        geodesic_matrix(np.zeros((5, 2)))
    with pytest.raises(DataError, match="non-empty"):
        geodesic_matrix(np.zeros((0, 3)))
    with pytest.raises(ConfigError, match="unreachable"):
        geodesic_matrix(np.zeros((3, 3)), unreachable="inf")
    with pytest.raises(ConfigError, match="positive integer"):
        geodesic_matrix(np.zeros((3, 3)), k=0)


def test_real_chair_cloud(shared_data) -> None:
    path = shared_data / "keypointnet-sample/pcds/03001627/88382b877be91b2a572f8e1c1caad99e.pcd"
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("DATA")) + 1
    points = np.array([[float(v) for v in line.split()[:3]] for line in lines[start:]])
    sub = points[::8]  # 256 points keep the brute force fast
    expected = brute_force_geodesic(sub, 20)
    got = geodesic_matrix(sub)
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12)
    assert got.max() == expected[finite].max()


def _bits(matrix: np.ndarray) -> bytes:
    return np.ascontiguousarray(matrix, dtype=np.float64).view(np.uint64).tobytes()


def _native_or_skip() -> None:
    from bt3d.native import load_dijkstra

    if load_dijkstra() is None:
        pytest.skip("no C compiler: the native Dijkstra cannot be built here")


@pytest.mark.parametrize("unreachable", ["max", "zero"])
def test_native_engine_is_bitwise_scipy_on_the_real_chair(shared_data, unreachable) -> None:
    """The oracle is the scipy path (scipy.sparse.csgraph.dijkstra, directed=False)."""
    _native_or_skip()
    from bt3d.io import read_pcd

    pcd = shared_data / "keypointnet-sample/pcds/03001627/88382b877be91b2a572f8e1c1caad99e.pcd"
    points = read_pcd(pcd)[0]
    oracle = geodesic_matrix(points, unreachable=unreachable, engine="scipy")
    for threads in (1, 3):
        got = geodesic_matrix(points, unreachable=unreachable, engine="native", threads=threads)
        assert _bits(got) == _bits(oracle)


@pytest.mark.parametrize("seed", range(4))
def test_native_engine_is_bitwise_scipy_with_duplicates_and_pieces(seed: int) -> None:
    """Duplicate points (zero-length edges), disconnected pieces, ties and tiny k."""
    _native_or_skip()
    rng = np.random.default_rng(seed)
    points = np.concatenate([two_blobs(rng, 150), rng.integers(0, 4, (60, 3)) * 0.01])
    points = np.concatenate([points, points[:25]])  # exact duplicates
    for k in (1, 2, 7, 20):
        oracle = geodesic_matrix(points, k=k, engine="scipy")
        assert _bits(geodesic_matrix(points, k=k, engine="native", threads=2)) == _bits(oracle)


def test_unknown_engine_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="engine"):
        geodesic_matrix(np.random.default_rng(0).random((5, 3)), engine="fast")


@pytest.mark.parametrize("seed", range(3))
def test_renumbered_graph_is_the_same_graph(seed: int) -> None:
    """Renumbering keeps every edge with its length (duplicates' zero edges included) and
    gives neighbours nearby ids (a smaller bandwidth than a shuffled numbering's)."""
    rng = np.random.default_rng(seed)
    points = np.concatenate([two_blobs(rng, 120), rng.integers(0, 3, (30, 3)) * 0.01])
    points = rng.permutation(np.concatenate([points, points[:10]]))
    indptr, indices, weights = symmetric_graph(knn_graph(points, k=6))
    new_indptr, new_indices, new_weights, order = renumbered(indptr, indices, weights)
    assert sorted(order.tolist()) == list(range(len(points)))
    rows = np.repeat(np.arange(len(points)), np.diff(indptr))
    new_rows = np.repeat(np.arange(len(points)), np.diff(new_indptr))
    old_edges = sorted(zip(rows, indices, weights, strict=True))
    new_edges = sorted(zip(order[new_rows], order[new_indices], new_weights, strict=True))
    assert old_edges == new_edges
    assert np.abs(new_rows - new_indices).max() < np.abs(rows - indices).max()
