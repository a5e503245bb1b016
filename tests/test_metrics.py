"""Evaluation metrics on hand-made cases whose IoU/PCK are worked out in the comments."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bt3d.errors import ConfigError, DataError
from bt3d.geodesic import geodesic_matrix
from bt3d.metrics import (
    DEFAULT_THRESHOLDS,
    evaluate_category,
    iou_curve,
    pck_curve,
    per_keypoint_pck,
    random_baseline_indices,
    symmetric_id_groups,
)
from bt3d.structures import ShapeAnnotation

# Ten points on a line, geodesic = 0.25 * |i - j| (exact in binary, so ties are exact).
LINE = 0.25 * np.abs(np.arange(10)[:, None] - np.arange(10)[None, :]).astype(np.float64)
T = np.array([0.0, 0.25, 0.5, 1.0])


def reference_iou(pred, gt, geos, t):
    """The protocol written out literally: FP/FN from np.all(D > t) per shape, pooled."""
    npos = fp = fn = 0
    for p, g, d in zip(pred, gt, geos, strict=True):
        p, g = np.asarray(p, dtype=int), np.asarray(g, dtype=int)
        npos += len(g)
        fp += np.count_nonzero(np.all(d[p][:, g] > t, axis=-1))
        fn += np.count_nonzero(np.all(d[g][:, p] > t, axis=-1))
    return (npos - fn) / max(npos + fp, np.finfo(np.float64).eps)


def test_iou_single_shape_by_hand() -> None:
    # GT {0, 5}, predictions {0, 6, 9}.
    # nearest GT of each prediction: 0 -> 0, 6 -> 0.25, 9 -> 1.0
    # nearest prediction of each GT: 0 -> 0, 5 -> 0.25; npos = 2
    # t=0:    FP 2 (6, 9), FN 1 (5) -> (2-1)/(2+2) = 1/4
    # t=0.25: FP 1 (9),    FN 0     -> 2/3; t=0.5 the same; t=1: FP 0 -> 1
    iou = iou_curve([[0, 6, 9]], [[0, 5]], [LINE], T)
    np.testing.assert_allclose(iou, [1 / 4, 2 / 3, 2 / 3, 1.0])


def test_iou_pooled_with_empty_gt_and_empty_predictions() -> None:
    # Shape A as above; B: GT {3}, no prediction (FN 1 always); C: no GT, prediction {2}
    # (FP 1 always). npos = 3.
    # t=0:    FN 1+1, FP 2+1 -> (3-2)/(3+3) = 1/6
    # t=0.25: FN 0+1, FP 1+1 -> (3-1)/(3+2) = 2/5; t=0.5 the same
    # t=1:    FN 0+1, FP 0+1 -> (3-1)/(3+1) = 1/2
    pred = [[0, 6, 9], [], np.array([2])]
    gt = [[0, 5], [3], []]
    iou = iou_curve(pred, gt, [LINE] * 3, T)
    np.testing.assert_allclose(iou, [1 / 6, 2 / 5, 2 / 5, 1 / 2])
    np.testing.assert_allclose(iou, [reference_iou(pred, gt, [LINE] * 3, t) for t in T])


def test_iou_degenerate_categories() -> None:
    # nothing to find and nothing predicted: 0 / eps = 0, as the reference returns
    assert iou_curve([[]], [[]], [LINE], T).tolist() == [0.0] * 4
    # predictions only: npos = 0, every prediction a false positive
    assert iou_curve([[1, 2]], [[]], [LINE], T).tolist() == [0.0] * 4


def test_perfect_prediction_gives_one_everywhere() -> None:
    rng = np.random.default_rng(0)
    points = rng.random((200, 3))
    geo = geodesic_matrix(points)
    gts = [rng.choice(200, size=8, replace=False) for _ in range(3)]
    ids = [np.arange(8) for _ in range(3)]
    assert np.all(iou_curve(gts, gts, [geo] * 3) == 1.0)
    assert np.all(pck_curve(gts, ids, gts, ids, [geo] * 3) == 1.0)
    assert len(iou_curve(gts, gts, [geo] * 3)) == len(DEFAULT_THRESHOLDS) == 11


def test_iou_matches_literal_protocol_on_random_shapes() -> None:
    rng = np.random.default_rng(1)
    geos = [geodesic_matrix(rng.random((120, 3))) for _ in range(4)]
    pred = [rng.choice(120, size=int(rng.integers(0, 10))) for _ in range(4)]  # may repeat
    gt = [rng.choice(120, size=int(rng.integers(0, 10)), replace=False) for _ in range(4)]
    thresholds = np.linspace(0, 0.5, 11)
    expected = [reference_iou(pred, gt, geos, t) for t in thresholds]
    np.testing.assert_allclose(iou_curve(pred, gt, geos, thresholds), expected)


def test_comparison_happens_in_the_matrix_dtype() -> None:
    # float32(0.07) > 0.07 in float64, but == float32(0.07): the reference scripts compare a
    # float32 matrix with a Python float, i.e. in float32, and count this as a hit.
    geo = np.array([[0.0, 0.07], [0.07, 0.0]], dtype=np.float32)
    assert iou_curve([[1]], [[0]], [geo], [0.01 * 7]).tolist() == [1.0]
    assert iou_curve([[1]], [[0]], [geo.astype(np.float64)], [0.01 * 7]).tolist() == [0.0]


def pck_case():
    # Shape A: GT idx (0, 5) with ids (1, 2); predictions idx (1, 9) with ids (1, 3).
    #   id 1: D[0, 1] = 0.25; id 2: no prediction -> miss.
    # Shape B: GT idx 4 id 3; prediction idx 4 id 3 -> D = 0.
    return dict(
        pred_indices=[[1, 9], [4]],
        pred_ids=[[1, 3], [3]],
        gt_indices=[[0, 5], [4]],
        gt_ids=[[1, 2], [3]],
        geodesics=[LINE, LINE],
        thresholds=T,
    )


def test_pck_by_hand() -> None:
    # pooled over 3 keypoints: t=0 -> 1 hit (B); t>=0.25 -> 2 hits
    np.testing.assert_allclose(pck_curve(**pck_case()), [1 / 3, 2 / 3, 2 / 3, 2 / 3])
    # per-shape mean: A = (0, 1/2, 1/2, 1/2), B = 1 -> (1/2, 3/4, 3/4, 3/4)
    np.testing.assert_allclose(pck_curve(**pck_case(), average="shapes"), [0.5, 0.75, 0.75, 0.75])
    # strict (D < t, KeypointNet eval_pck): A = (0, 0, 1/2, 1/2), B = (0, 1, 1, 1)
    np.testing.assert_allclose(
        pck_curve(**pck_case(), average="shapes", strict=True), [0.0, 0.5, 0.75, 0.75]
    )
    per_id = per_keypoint_pck(**pck_case())
    assert list(per_id) == [1, 2, 3]
    np.testing.assert_allclose(per_id[1], [0, 1, 1, 1])
    np.testing.assert_allclose(per_id[2], [0, 0, 0, 0])
    np.testing.assert_allclose(per_id[3], [1, 1, 1, 1])


def test_pck_edge_cases() -> None:
    # no prediction at all: every keypoint a miss; no GT at all: undefined (NaN)
    case = pck_case() | {"pred_indices": [[], []], "pred_ids": [[], []]}
    assert pck_curve(**case).tolist() == [0.0] * 4
    case = pck_case() | {"gt_indices": [[], []], "gt_ids": [[], []]}
    assert np.isnan(pck_curve(**case)).all()
    assert per_keypoint_pck(**case) == {}
    with pytest.raises(ConfigError, match="average"):
        pck_curve(**pck_case(), average="views")


def test_symmetric_groups_allow_swapped_predictions() -> None:
    # GT: left (id 0) at 0, right (id 1) at 9; predictions swapped: D = 2.25 for both.
    args = ([[9, 0]], [[0, 1]], [[0, 9]], [[0, 1]], [LINE], T)
    assert pck_curve(*args).tolist() == [0.0] * 4
    assert pck_curve(*args, symmetric_groups=[[(0, 1)]]).tolist() == [1.0] * 4
    # a group that does not contain the ids changes nothing; None means no symmetry
    assert pck_curve(*args, symmetric_groups=[[(2, 3)]]).tolist() == [0.0] * 4
    assert pck_curve(*args, symmetric_groups=[None]).tolist() == [0.0] * 4


def test_symmetric_id_groups_map_positions_to_ids() -> None:
    # A real chair.json record: ids 0..5, 10..16; the base legs are positions 6..10.
    ids = [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 16]
    symmetries = {
        "reflection": [{"kp_indexes": [0, 1]}, {"kp_indexes": [2, 3]}, {"kp_indexes": [4, 5]}],
        "rotation": [{"kp_indexes": [6, 7, 8, 9, 10], "is_circle": False, "circle": {}}],
    }
    assert symmetric_id_groups(ids, symmetries) == [(0, 1), (2, 3), (4, 5), (10, 11, 12, 13, 14)]
    assert symmetric_id_groups(ids, symmetries, kinds=("reflection",)) == [(0, 1), (2, 3), (4, 5)]
    assert symmetric_id_groups(ids, {}) == []
    with pytest.raises(DataError, match=r"chair\.json: reflection kp_indexes \[13\] outside"):
        symmetric_id_groups(ids, {"reflection": [{"kp_indexes": [0, 13]}]}, source="chair.json")
    with pytest.raises(DataError, match="kp_indexes list"):
        symmetric_id_groups(ids, {"rotation": [{"circle": {}}]})


def test_symmetric_id_groups_on_real_annotations(shared_data) -> None:
    records = json.loads((shared_data / "keypointnet-sample/annotations/chair.json").read_text())
    for record in records[:50]:
        ids = [kp["semantic_id"] for kp in record["keypoints"]]
        groups = symmetric_id_groups(ids, record["symmetries"], source=record["model_id"])
        assert all(set(group) <= set(ids) for group in groups)
    assert (0, 1) in symmetric_id_groups(
        [kp["semantic_id"] for kp in records[0]["keypoints"]], records[0]["symmetries"]
    )


def test_input_validation_names_shape_and_lengths() -> None:
    with pytest.raises(DataError, match=r"shape 1: prediction index 10 is outside .*\[0, 10\)"):
        iou_curve([[0], [10]], [[0], [0]], [LINE, LINE], T)
    with pytest.raises(DataError, match=r"shape 0: ground-truth index -1"):
        iou_curve([[0]], [[-1]], [LINE], T)
    with pytest.raises(ValueError, match="pred_indices has 2, gt_indices has 1, geodesics has 2"):
        iou_curve([[0], [1]], [[0]], [LINE, LINE], T)
    with pytest.raises(DataError, match="shape 0: pred_ids has 1 entries for 2 keypoints"):
        pck_curve([[0, 1]], [[0]], [[0]], [[0]], [LINE], T)
    with pytest.raises(DataError, match="shape 0: geodesic matrix must be square"):
        iou_curve([[0]], [[0]], [LINE[:3]], T)
    with pytest.raises(DataError, match="integers"):
        iou_curve([[0.5]], [[0]], [LINE], T)
    with pytest.raises(ConfigError, match="thresholds"):
        iou_curve([[0]], [[0]], [LINE], [])


def test_random_baseline_indices() -> None:
    a = random_baseline_indices(2048, 10, rng=3)
    assert a.dtype == np.int64 and len(set(a.tolist())) == 10
    assert a.min() >= 0 and a.max() < 2048
    assert np.array_equal(a, random_baseline_indices(2048, 10, np.random.default_rng(3)))
    assert sorted(random_baseline_indices(5, 5, rng=0).tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="cannot draw 6"):
        random_baseline_indices(5, 6)


def test_evaluate_category_table() -> None:
    def annotation(model_id: str, ids, idx, symmetries):
        k = len(ids)
        return ShapeAnnotation(
            class_id="03001627",
            model_id=model_id,
            semantic_ids=np.array(ids),
            point_indices=np.array(idx),
            xyz=np.zeros((k, 3)),
            face_indices=np.zeros(k, dtype=int),
            face_uvs=np.zeros((k, 3)),
            symmetries=symmetries,
        )

    swap = {"reflection": [{"kp_indexes": [0, 1]}]}
    gts = [annotation("a", [0, 1], [0, 9], swap), annotation("b", [0, 1], [2, 4], {})]
    # shape a: predictions swapped (PCK misses them, mIoU does not care about ids);
    # shape b: exact. PCK = 2/4 everywhere; symmetric PCK = 4/4; mIoU = 1.
    preds = [
        {"indices": np.array([9, 0]), "semantic_ids": np.array([0, 1])},
        {"indices": np.array([2, 4]), "semantic_ids": np.array([0, 1])},
    ]
    table = evaluate_category(preds, gts, [LINE, LINE], T, symmetric=True)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["threshold", "miou", "pck", "pck_symmetric"]
    assert table["threshold"].tolist() == T.tolist()
    assert table["miou"].tolist() == [1.0] * 4
    assert table["pck"].tolist() == [0.5] * 4
    assert table["pck_symmetric"].tolist() == [1.0] * 4
    assert list(evaluate_category(preds, gts, [LINE, LINE], T).columns) == [
        "threshold",
        "miou",
        "pck",
    ]
    with pytest.raises(DataError, match="predictions has 1, ground_truths has 2"):
        evaluate_category(preds[:1], gts, [LINE, LINE], T)
