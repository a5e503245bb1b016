"""Back-projection: patch lookup, bilinear sampling, view averaging and geodesic smoothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import bt3d.backproject as backproject
from bt3d.backproject import (
    geodesic_smooth,
    reference_geodesic_smooth_loop,
    sample_point_features,
)
from bt3d.errors import ConfigError, DataError


def coordinate_maps(views: int, h: int, w: int) -> torch.Tensor:
    """(V, 3, h, w) maps whose channels are (row, column, 100 * view) of the cell."""
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    return torch.stack(
        [torch.stack([rows, cols, torch.full((h, w), 100.0 * v)]) for v in range(views)]
    )


def test_nearest_picks_the_patch_the_pixel_falls_in() -> None:
    maps = coordinate_maps(1, 4, 4)  # image 8 px, cells of 2 px
    pixels = torch.tensor([[[3.7, 0.2], [1.99, 2.0], [8.0, 8.0], [0.0, 7.99], [4.0, 5.5]]])
    visible = torch.ones(1, 5, dtype=torch.bool)
    feats, counts = sample_point_features(maps, pixels, visible, image_size=8)
    # (row, col) = (floor(y / 2), floor(x / 2)), the far edge 8.0 belonging to the last cell
    expected_rc = [[0, 1], [1, 0], [3, 3], [3, 0], [2, 2]]
    assert feats[:, :2].tolist() == expected_rc
    assert counts.tolist() == [1] * 5
    assert feats.dtype == torch.float32 and counts.dtype == torch.int64


def test_nearest_matches_reference_patch_id_formula() -> None:
    # Reference: patch_id = y // patch * (image_size / patch) + x // patch, 224 px, 14 px patches.
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 224, size=(3, 50, 2))
    maps = torch.from_numpy(rng.normal(size=(3, 5, 16, 16))).float()
    feats_by_view = []
    for v in range(3):
        visible = np.zeros((3, 50), dtype=bool)
        visible[v] = True
        feats_by_view.append(sample_point_features(maps, pixels, visible, 224)[0])
    for v in range(3):
        patch = (pixels[v, :, 1] // 14 * 16 + pixels[v, :, 0] // 14).astype(int)
        expected = maps[v].reshape(5, 256)[:, patch].T
        torch.testing.assert_close(feats_by_view[v], expected)


def test_mean_over_visible_views_and_counts() -> None:
    maps = coordinate_maps(3, 2, 2)  # image 4 px, cells of 2 px
    pixels = torch.full((3, 4, 2), 1.0)
    pixels[1, :, 0] = 3.0  # view 1 sees everything in cell (0, 1)
    pixels[:, 3] = float("nan")  # point 3: hidden everywhere, NaN projections must not leak
    visible = torch.tensor(
        [[True, True, False, False], [True, False, False, False], [True, True, True, False]]
    )
    feats, counts = sample_point_features(maps, pixels, visible, image_size=4)
    assert counts.tolist() == [3, 2, 1, 0]
    torch.testing.assert_close(feats[0], torch.tensor([0.0, 1 / 3, 100.0]))  # views 0, 1, 2
    torch.testing.assert_close(feats[1], torch.tensor([0.0, 0.0, 100.0]))  # views 0, 2
    torch.testing.assert_close(feats[2], torch.tensor([0.0, 0.0, 200.0]))  # view 2
    assert feats[3].tolist() == [0.0, 0.0, 0.0]


def test_bilinear_equals_nearest_at_patch_centres() -> None:
    rng = np.random.default_rng(1)
    maps = torch.from_numpy(rng.normal(size=(2, 7, 16, 16))).float()
    cells = rng.integers(0, 16, size=(2, 40, 2))
    pixels = (cells + 0.5) * 14.0  # centres of 14-px patches in a 224-px image
    visible = rng.random((2, 40)) < 0.7
    near, c1 = sample_point_features(maps, pixels, visible, 224, mode="nearest")
    bil, c2 = sample_point_features(maps, pixels, visible, 224, mode="bilinear")
    torch.testing.assert_close(bil, near, rtol=1e-5, atol=1e-5)
    assert torch.equal(c1, c2)


def test_bilinear_interpolates_between_centres_and_keeps_border() -> None:
    maps = coordinate_maps(1, 4, 4)  # cells of 2 px: centres at 1, 3, 5, 7
    pixels = torch.tensor([[[2.0, 1.0], [1.5, 3.0], [0.1, 1.0], [7.9, 7.9]]])
    feats, _ = sample_point_features(
        maps, pixels, torch.ones(1, 4, dtype=torch.bool), 8, "bilinear"
    )
    expected_rc = torch.tensor(
        [
            [0.0, 0.5],  # halfway between the centres of cells (0, 0) and (0, 1)
            [1.0, 0.25],  # a quarter of the way from column 0 to 1, on row 1's centre
            [0.0, 0.0],  # between image edge and first centre: border value, not faded
            [3.0, 3.0],
        ]
    )
    torch.testing.assert_close(feats[:, :2], expected_rc)


def test_chunking_over_views_gives_same_result(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    maps = torch.from_numpy(rng.normal(size=(5, 3, 4, 4))).float()
    pixels = rng.uniform(0, 32, size=(5, 20, 2))
    visible = rng.random((5, 20)) < 0.5
    for mode in ("nearest", "bilinear"):
        whole, _ = sample_point_features(maps, pixels, visible, 32, mode)
        monkeypatch.setattr(backproject, "_CHUNK_ELEMENTS", 2 * 20 * 3)  # 2 views per chunk
        chunked, _ = sample_point_features(maps, pixels, visible, 32, mode)
        monkeypatch.undo()
        torch.testing.assert_close(chunked, whole)


def test_sampling_input_errors() -> None:
    maps = torch.zeros(2, 3, 4, 4)
    pixels = torch.full((2, 5, 2), 4.0)
    visible = torch.ones(2, 5, dtype=torch.bool)
    pixels[1, 3] = torch.tensor([4.0, 8.5])
    with pytest.raises(DataError, match=r"outside the 8 x 8 image; first: point 3 in view 1"):
        sample_point_features(maps, pixels, visible, 8)
    visible[1, 3] = False  # hidden points may project anywhere
    sample_point_features(maps, pixels, visible, 8)
    with pytest.raises(DataError, match=r"pixels must be \(V, N, 2\) with V = 2"):
        sample_point_features(maps, pixels[:1], visible[:1], 8)
    with pytest.raises(DataError, match=r"visible must be \(V, N\)"):
        sample_point_features(maps, pixels, visible[:, :4], 8)
    with pytest.raises(DataError, match=r"\(V, C, h, w\)"):
        sample_point_features(maps[0], pixels, visible, 8)
    with pytest.raises(ConfigError, match="sampling mode"):
        sample_point_features(maps, pixels, visible, 8, mode="bicubic")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sampling_and_smoothing_on_cuda() -> None:
    rng = np.random.default_rng(3)
    maps = torch.from_numpy(rng.normal(size=(3, 4, 4, 4))).float()
    pixels = rng.uniform(0, 8, size=(3, 10, 2))
    visible = rng.random((3, 10)) < 0.6
    cpu, counts_cpu = sample_point_features(maps, pixels, visible, 8, "bilinear")
    gpu, counts_gpu = sample_point_features(maps.cuda(), pixels, visible, 8, "bilinear")
    assert gpu.device.type == "cuda" and counts_gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)
    geo = torch.from_numpy(rng.random((10, 10))).float()
    geo = (geo + geo.T) / 2
    smooth_gpu = geodesic_smooth(gpu, counts_gpu, geo.cuda(), sigma=0.2)
    torch.testing.assert_close(smooth_gpu.cpu(), geodesic_smooth(cpu, counts_cpu, geo, 0.2))


def random_smoothing_inputs(seed: int, n: int = 30, c: int = 6):
    rng = np.random.default_rng(seed)
    points = rng.random((n, 3))
    euclid = np.linalg.norm(points[:, None] - points[None], axis=-1)
    geodesic = euclid / euclid.max()
    features = rng.normal(size=(n, c)).astype(np.float32)
    counts = rng.integers(0, 4, size=n)
    counts[:3] = 0
    features[counts == 0] = 0  # as sample_point_features returns them
    return features, counts, geodesic


@pytest.mark.parametrize("sigma", [0.01, 0.1, 0.5])
def test_smoothing_matmul_equals_reference_loop(sigma: float) -> None:
    features, counts, geodesic = random_smoothing_inputs(4)
    fast = geodesic_smooth(features, counts, geodesic, sigma=sigma)
    slow = reference_geodesic_smooth_loop(features, counts, geodesic, sigma=sigma)
    assert isinstance(fast, np.ndarray) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)
    assert np.isfinite(fast).all()


def test_smoothing_by_hand() -> None:
    # D = [[0, .5, 1], [.5, 0, .5], [1, .5, 0]], sigma = 0.5: W_01 = e^-0.5, W_02 = e^-2.
    geodesic = np.array([[0.0, 0.5, 1.0], [0.5, 0.0, 0.5], [1.0, 0.5, 0.0]])
    features = np.array([[1.0], [4.0], [0.0]])  # float64 in, float64 out
    counts = np.array([2, 1, 0])
    out = geodesic_smooth(features, counts, geodesic, sigma=0.5)
    a, b = math.exp(-0.5), math.exp(-2.0)
    assert out.dtype == np.float64
    assert out[0, 0] == pytest.approx((2 * 1 + a * 4) / (2 + a))
    assert out[1, 0] == pytest.approx((a * 2 * 1 + 4) / (a * 2 + 1))
    assert out[2, 0] == pytest.approx((b * 2 * 1 + a * 4) / (b * 2 + a))  # unseen, filled in


def test_unseen_neighbourhood_gives_zeros_not_nan() -> None:
    geodesic = np.array([[0.0, 0.01, 1.0], [0.01, 0.0, 1.0], [1.0, 1.0, 0.0]])
    features = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    counts = np.array([1, 1, 0])
    for smooth in (geodesic_smooth, reference_geodesic_smooth_loop):
        out = smooth(features, counts, geodesic)  # exp(-1 / 2e-4) underflows to 0
        assert out[2].tolist() == [0.0, 0.0]
        assert np.isfinite(out).all()
    # with nothing seen at all, everything is zero
    assert not geodesic_smooth(features, np.zeros(3, int), geodesic).any()


def test_tiny_sigma_is_identity_on_seen_points() -> None:
    features, counts, geodesic = random_smoothing_inputs(5)
    out = geodesic_smooth(features, counts, geodesic, sigma=1e-4)
    seen = counts > 0
    np.testing.assert_allclose(out[seen], features[seen], rtol=1e-6)


def test_smoothing_torch_in_torch_out_and_errors() -> None:
    features, counts, geodesic = random_smoothing_inputs(6)
    out = geodesic_smooth(torch.from_numpy(features), torch.from_numpy(counts), geodesic, 0.1)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), geodesic_smooth(features, counts, geodesic, 0.1))
    with pytest.raises(DataError, match=r"geodesic_normalised must be \(N, N\) = \(30, 30\)"):
        geodesic_smooth(features, counts, geodesic[:5, :5])
    with pytest.raises(DataError, match="counts must be"):
        geodesic_smooth(features, counts[:4], geodesic)
    with pytest.raises(ConfigError, match="sigma"):
        geodesic_smooth(features, counts, geodesic, sigma=0.0)
