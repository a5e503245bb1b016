"""Keypoint prototypes: features, mean/sum target distances, duplicates, errors, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from bt3d.errors import ConfigError, DataError
from bt3d.fewshot import KeypointPrototypes, LabelledShape, build_prototypes


def _line_shape(positions, ids, idx, channels=2, model_id="m"):
    """Points on a line at ``positions``; D = |x_i - x_j|; feature of point i = (i, 10 i, ...)."""
    x = np.asarray(positions, dtype=np.float64)
    d = np.abs(x[:, None] - x[None, :])
    f = np.arange(len(x), dtype=np.float32)[:, None] * (10.0 ** np.arange(channels))[None, :]
    return LabelledShape(f.astype(np.float32), d, np.asarray(ids), np.asarray(idx), model_id)


@pytest.fixture
def two_shapes():
    # shape a: ids 1, 2, 3 at points 0, 1, 2 (x = 0, .2, .5)
    a = _line_shape([0.0, 0.2, 0.5, 1.0], [3, 1, 2], [2, 0, 1], model_id="a")
    # shape b: ids 2, 3, 7 at points 3, 1, 0 (x = 0, .4, .6, .9)
    b = _line_shape([0.0, 0.4, 0.6, 0.9], [7, 2, 3], [0, 3, 1], model_id="b")
    return a, b


def test_mean_prototypes_by_hand(two_shapes):
    protos = build_prototypes(list(two_shapes))
    np.testing.assert_array_equal(protos.semantic_ids, [1, 2, 3, 7])
    assert protos.features.dtype == np.float32
    # id 1: a point 0 -> (0, 0); id 2: a point 1, b point 3 -> (2, 20); id 3: a 2, b 1 -> (1.5, 15)
    np.testing.assert_allclose(protos.features, [[0, 0], [2, 20], [1.5, 15], [0, 0]])
    counts = np.array([[1, 1, 1, 0], [1, 2, 2, 1], [1, 2, 2, 1], [0, 1, 1, 1]])
    np.testing.assert_array_equal(protos.pair_counts, counts)
    # pair (2, 3): a |.2 - .5| = .3, b |.9 - .4| = .5 -> mean .4
    expected = np.array(
        [
            [0.0, 0.2, 0.5, 0.0],
            [0.2, 0.0, 0.4, 0.9],
            [0.5, 0.4, 0.0, 0.4],
            [0.0, 0.9, 0.4, 0.0],
        ]
    )
    np.testing.assert_allclose(protos.target_distances, expected)
    assert protos.shot_ids == ["a", "b"]


def test_sum_reduction_adds_pairs_like_the_reference(two_shapes):
    mean = build_prototypes(list(two_shapes), reduction="mean")
    total = build_prototypes(list(two_shapes), reduction="sum")
    np.testing.assert_allclose(total.target_distances, mean.target_distances * mean.pair_counts)
    assert total.target_distances[1, 2] == pytest.approx(0.8)
    np.testing.assert_array_equal(total.features, mean.features)
    with pytest.raises(ConfigError, match="median"):
        build_prototypes(list(two_shapes), reduction="median")


def test_duplicate_ids_in_one_shape_are_averaged():
    shape = _line_shape([0.0, 0.2, 0.6, 1.0], [4, 4, 9], [0, 2, 3], model_id="dup")
    protos = build_prototypes([shape])
    np.testing.assert_array_equal(protos.semantic_ids, [4, 9])
    np.testing.assert_allclose(protos.features[0], [1.0, 10.0])  # mean of points 0 and 2
    # distance id 4 -> id 9: mean(|0 - 1|, |.6 - 1|) = .7; the shape counts once
    np.testing.assert_allclose(protos.target_distances, [[0.0, 0.7], [0.7, 0.0]])
    np.testing.assert_array_equal(protos.pair_counts, [[1, 1], [1, 1]])


def test_errors_name_the_shape(two_shapes):
    a, b = two_shapes
    with pytest.raises(DataError, match="no labelled shapes"):
        build_prototypes([])
    wide = _line_shape([0.0, 0.5, 1.0], [1], [0], channels=3, model_id="wide-one")
    with pytest.raises(DataError, match="wide-one.*3 channels"):
        build_prototypes([a, wide])
    bad = _line_shape([0.0, 0.5, 1.0], [1, 2], [0, 3], model_id="out-of-range")
    with pytest.raises(DataError, match="out-of-range.*point index"):
        build_prototypes([a, bad])
    odd = LabelledShape(
        a.features, a.geodesic_normalised[:3], a.semantic_ids, a.point_indices, "sq"
    )
    with pytest.raises(DataError, match="sq.*geodesic"):
        build_prototypes([odd])


def test_save_load_round_trip(two_shapes, tmp_path):
    protos = build_prototypes(list(two_shapes), reduction="sum")
    path = protos.save(tmp_path / "sub" / "chair.npz")
    assert sorted(p.name for p in path.parent.iterdir()) == ["chair.npz"]  # no temp file left
    back = KeypointPrototypes.load(path)
    for name in ("semantic_ids", "features", "target_distances", "pair_counts"):
        np.testing.assert_array_equal(getattr(back, name), getattr(protos, name))
    assert back.shot_ids == ["a", "b"] and back.reduction == "sum"
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(DataError, match="junk.npz"):
        KeypointPrototypes.load(tmp_path / "junk.npz")
