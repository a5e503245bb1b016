"""Worst cases and 3D views of a category's test shapes: the maths by hand, then the pages."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bt3d.errors import DataError
from bt3d.geodesic import geodesic_matrix, normalise_geodesic
from bt3d.metrics import keypoint_errors, worst_keypoints, worst_shapes

# Five points on a line, one apart: the k-nearest-neighbour graph's geodesic between points
# i and j is |i - j|, normalised by the largest (4).
LINE = np.array([[float(i), 0.0, 0.0] for i in range(5)])


def line_geodesic() -> np.ndarray:
    raw = geodesic_matrix(LINE, k=2)
    np.testing.assert_allclose(raw, np.abs(np.subtract.outer(range(5), range(5))))
    return normalise_geodesic(raw)


def test_keypoint_errors_by_hand() -> None:
    geo = line_geodesic()
    # truth: id 0 at point 0, id 1 at point 4, id 7 at point 2 (never predicted)
    # predictions: id 0 at point 1 (error 1/4), id 1 at point 4 (exact), id 1 again at 3
    errors = keypoint_errors([1, 4, 3], [0, 1, 1], [0, 4, 2], [0, 1, 7], geo)
    np.testing.assert_allclose(errors, [0.25, 0.0, np.inf])
    # seen from the predictions: the second id-1 prediction is one point off (1/4)
    back = keypoint_errors([0, 4, 2], [0, 1, 7], [1, 4, 3], [0, 1, 1], geo)
    np.testing.assert_allclose(back, [0.25, 0.0, 0.25])


def test_worst_keypoints_rank_finite_errors_over_shapes() -> None:
    table = worst_keypoints(
        ["b", "a"],
        [np.array([0, 1, 7]), np.array([0, 1])],
        [np.array([0.25, 0.0, np.inf]), np.array([0.5, 0.25])],
        3,
    )
    assert list(table.columns) == ["rank", "model_id", "semantic_id", "error"]
    # 0.5 first; the two 0.25 tie and are ordered by model id; inf (no prediction) left out
    assert table.values.tolist() == [[1, "a", 0, 0.5], [2, "a", 1, 0.25], [3, "b", 0, 0.25]]
    assert len(worst_keypoints(["b"], [[0]], [[np.inf]], 5)) == 0
    with pytest.raises(DataError, match="differ in length"):
        worst_keypoints(["a", "b"], [[0]], [[0.1]], 1)


def test_worst_shapes_rank_by_mean_finite_error() -> None:
    errors = [np.array([0.25, 0.0, np.inf]), np.array([0.5, 0.25]), np.array([np.inf])]
    assert worst_shapes(["b", "a", "c"], errors, 5) == [("a", 0.375), ("b", 0.125)]
    assert worst_shapes(["b", "a", "c"], errors, 1) == [("a", 0.375)]


def scored_shapes():
    from bt3d.casebook import ScoredShape

    geo = line_geodesic()
    shapes = []
    for model_id, pred in (("m-good", [0, 4]), ("m-bad", [2, 1])):
        gt_idx, gt_ids, pred_ids = np.array([0, 4]), np.array([0, 1]), np.array([0, 1])
        shapes.append(
            ScoredShape(
                model_id=model_id,
                points=LINE,
                pred_indices=np.array(pred),
                pred_ids=pred_ids,
                gt_indices=gt_idx,
                gt_ids=gt_ids,
                gt_errors=keypoint_errors(pred, pred_ids, gt_idx, gt_ids, geo),
                pred_errors=keypoint_errors(gt_idx, gt_ids, pred, pred_ids, geo),
                scale=4.0,
            )
        )
    return shapes


def test_worst_case_files(tmp_path: Path) -> None:
    from bt3d.casebook import write_worst_cases

    outputs = {
        "table": tmp_path / "w.csv",
        "picture": tmp_path / "w.png",
        "page": tmp_path / "w.html",
    }
    labels = {0: "nose"}  # id 1 has no text label: shown as "id 1"
    write_worst_cases(scored_shapes(), labels, "airplane", 3, 1, outputs)
    table = pd.read_csv(outputs["table"])
    assert list(table.columns) == ["rank", "model_id", "semantic_id", "label", "error", "distance"]
    # m-bad: id 1 predicted at point 1, truth at 4 -> 3/4; id 0 at 2, truth at 0 -> 2/4
    assert table[["model_id", "label", "error", "distance"]].values.tolist() == [
        ["m-bad", "id 1", 0.75, 3.0],
        ["m-bad", "nose", 0.5, 2.0],
        ["m-good", "nose", 0.0, 0.0],
    ]
    assert outputs["picture"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = outputs["page"].read_text()
    assert "<table" in page and "m-bad" in page and "0.7500" in page
    assert 'src="data:image/png;base64,' in page


def inlined_figure(page: str) -> dict:
    """The plotly figure a compact page carries (gzip, base64) as the browser inflates it."""
    found = re.search(r'<script id="bt3d-figure" type="application/octet-stream">([^<]+)<', page)
    return json.loads(gzip.decompress(base64.b64decode(found.group(1))))


def test_view_page_has_truth_predictions_links_and_errors(tmp_path: Path) -> None:
    from bt3d.casebook import REPORT_EMBED_LIMIT, write_view_page
    from bt3d.vendor import PLOTLY_GL3D_GZ, PLOTLY_GL3D_SHA256

    page = tmp_path / "airplane.html"
    write_view_page(scored_shapes(), {0: "nose"}, "airplane", page, max_shapes=1)
    text = page.read_text()
    assert "<script src=" not in text and "fetch(" not in text  # all inline, no network
    assert hashlib.sha256(gzip.decompress(PLOTLY_GL3D_GZ.read_bytes())).hexdigest() == (
        PLOTLY_GL3D_SHA256
    )
    assert len(text) < REPORT_EMBED_LIMIT
    figure = inlined_figure(text)
    title = figure["layout"]["title"]["text"]
    assert title == "airplane: 1 of 2 test shapes, worst first: m-bad (mean error 0.6250)"
    assert "m-good" not in json.dumps(figure)  # capped at one shape, the worst
    assert figure["layout"]["scene"]["camera"]["up"] == {"x": 0, "y": 1, "z": 0}  # ShapeNet
    surface, truth, predicted, links = figure["data"]
    assert truth["name"] == "ground truth (circle)" and truth["text"] == ["nose", "id 1"]
    assert predicted["name"] == "predicted (diamond)" and predicted["marker"]["symbol"] == "diamond"
    # id 1: predicted at point 1, truth at point 4: 3/4 of the largest geodesic (4)
    assert predicted["hovertext"][1] == "id 1<br>predicted (diamond)<br>geodesic error 0.7500 " \
        "(distance 3.0000)"  # fmt: skip
    assert truth["marker"]["color"][0] == predicted["marker"]["color"][0]  # colour by id
    assert links["mode"] == "lines"


def test_viewer_layers_and_links_switch_with_the_menu() -> None:
    from bt3d.viewer import KeypointLayer, ShapeView, keypoint_figure

    views = [
        ShapeView(
            f"s{i}",
            LINE,
            LINE[:2],
            ["a", "b"],
            layers=[KeypointLayer("predicted", LINE[2:3], ["a"], ["red"])],
            links=np.array([[LINE[0], LINE[2]]]) if i == 0 else None,
        )
        for i in range(2)
    ]
    fig = keypoint_figure(views)
    assert len(fig.data) == 4 + 3  # surface, keypoints, layer (+ links on the first)
    shown = fig.layout.updatemenus[0].buttons[1].args[0]["visible"]
    assert shown == [False] * 4 + [True] * 3
    with pytest.raises(DataError, match="predicted has 1 keypoints, 2 names"):
        bad = KeypointLayer("predicted", LINE[2:3], ["a", "b"], ["red"])
        keypoint_figure([ShapeView("x", LINE, LINE[:1], ["a"], layers=[bad])])


def write_part(root: Path, pred_indices: list[int]) -> dict:
    """One test shard of one shape on LINE: annotations, .pcd, geodesics and predictions,
    written by the library's own writers; returns load_test_shapes' file arguments."""
    from bt3d.cache import encode_geodesic, save_arrays, save_json_atomic
    from bt3d.io import write_annotations, write_pcd
    from bt3d.results import Provenance
    from bt3d.structures import ShapeAnnotation

    truth = ShapeAnnotation(
        class_id="02691156",
        model_id="m0",
        semantic_ids=np.array([0, 1]),
        point_indices=np.array([0, 4]),
        xyz=LINE[[0, 4]],
        face_indices=np.array([0, 0]),
        face_uvs=np.full((2, 3), 1 / 3),
        symmetries={},
        source="test",
    )
    write_annotations(root / "airplane.json", [truth])
    write_pcd(root / "m0.pcd", LINE.astype(np.float32))
    provenance = Provenance("airplane", {"geodesics": {}, "predictions": {}})
    matrix, scale = encode_geodesic(geodesic_matrix(LINE, k=2))
    header = provenance.header("geodesics", part="shard-0", skipped_shapes=0, sample_order="x")
    arrays = {"model_ids": np.array(["m0"]), "geodesic": matrix[None], "scale": np.array([scale]),
              "labelled": np.array([False])}  # fmt: skip
    save_arrays(root / "shard-0.npz", arrays, header)
    prediction = {"model_id": "m0", "indices": pred_indices, "semantic_ids": [0, 1]}
    (root / "set-0").mkdir()
    save_json_atomic(
        root / "set-0" / "shard-0.json",
        {
            "header": provenance.header("predictions", part="shard-0", shot_set="set-0"),
            "predictions": [prediction],
        },
    )
    return {
        "annotations": root / "airplane.json",
        "predictions": [root / "set-0" / "shard-0.json"],
        "geodesics": [root / "shard-0.npz"],
        "point_clouds": [root / "m0.pcd"],
        "provenance": provenance,
    }


def test_load_test_shapes_reads_the_artifacts_and_scores_them(tmp_path: Path) -> None:
    from bt3d.casebook import load_test_shapes

    (shape,) = load_test_shapes(**write_part(tmp_path, [1, 4]))
    assert shape.model_id == "m0" and shape.scale == pytest.approx(4.0)
    np.testing.assert_allclose(shape.points, LINE)
    np.testing.assert_allclose(shape.gt_errors, [0.25, 0.0])  # id 0 one point off of four
    np.testing.assert_allclose(shape.pred_errors, [0.25, 0.0])


def test_load_test_shapes_names_the_file_of_a_bad_prediction(tmp_path: Path) -> None:
    from bt3d.casebook import load_test_shapes
    from bt3d.errors import CacheError
    from bt3d.results import Provenance

    files = write_part(tmp_path, [1, 9])  # point 9 of a 5-point shape
    with pytest.raises(DataError, match=r"shard-0.json: test shape m0: .*index 9 is outside"):
        load_test_shapes(**files)
    files["provenance"] = Provenance("chair", files["provenance"].params)  # another category
    with pytest.raises(CacheError, match="shard-0.npz"):
        load_test_shapes(**files)
