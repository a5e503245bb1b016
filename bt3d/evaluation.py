"""Evaluation of a category: mIoU, PCK and per-keypoint PCK of each shot set's predictions on
its query shapes, and of the random-point baseline.

Keypoint text labels come from the dataset's optional ``keypoint_labels.json`` (KeypointNet's
label table; the synthetic dataset writes one). The random-point baseline draws, per test
shape, as many distinct points as the method predicts keypoints and gives them the method's
semantic ids; it is scored identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bt3d.cache import load_json_artifact, save_json_atomic
from bt3d.errors import CacheError, DataError
from bt3d.io import KeypointNetDataset
from bt3d.metrics import (
    PerShape,
    evaluate_category,
    iou_counts,
    pck_curve,
    per_keypoint_pck,
    random_baseline_indices,
)
from bt3d.results import (
    Provenance,
    part_of,
    prediction_header,
    read_geodesic_part,
    rebuild_on_error,
)
from bt3d.selection import shot_set_index


def evaluate_category_files(
    dataset: KeypointNetDataset,
    predictions_paths: Sequence[str],
    geodesics_paths: Sequence[str],
    thresholds: Sequence[float],
    baseline_seed: int,
    output: str,
    provenance: Provenance,
) -> None:
    """mIoU, PCK and per-keypoint PCK of a category's predictions and of the random
    baseline, per shot set, with the per-shape counts behind them, written as the sealed
    JSON ``output`` (``metrics/<variant>/<category>.json``).

    Args:
        predictions_paths: every ``.../<shot set>/<part>.json`` of the variant and category.
        geodesics_paths: the geodesics of every part those predictions are on.
    """
    category = provenance.category
    thresholds = [float(t) for t in thresholds]
    annotations = dataset.annotations(category)
    labels = dataset.keypoint_labels(category)
    geodesics: dict[str, np.ndarray] = {}
    skipped, sample_order = 0, ""
    for path in geodesics_paths:
        geo = read_geodesic_part(path, provenance.header("geodesics", part=part_of(path)))
        skipped = max(skipped, geo["skipped_shapes"])
        sample_order = geo["sample_order"]
        for i, model_id in enumerate(geo["model_ids"]):
            geodesics[model_id] = geo["geodesic"][i].astype(np.float64) * geo["scale"][i]
    by_set: dict[str, list[str]] = {}
    for path in predictions_paths:
        by_set.setdefault(Path(path).parent.name, []).append(path)
    rng = np.random.default_rng(baseline_seed)  # one stream through the shot sets in order
    sets = [
        evaluate_shot_set(name, by_set[name], geodesics, annotations, thresholds, rng, provenance)
        for name in sorted(by_set, key=shot_set_index)
    ]
    keypoint_ids = {int(k) for s in sets for k in s["per_keypoint_pck"]}
    save_json_atomic(
        output,
        {
            "category": category,
            "thresholds": thresholds,
            "shot_sets": sets,
            "skipped_shapes": skipped,
            "sample_order": sample_order,
            "annotated_shapes": len(annotations),
            "keypoint_labels": {str(k): labels[k] for k in sorted(keypoint_ids) if k in labels},
        },
    )


def evaluate_shot_set(
    name: str,
    paths: Sequence[str],
    geodesics: dict[str, np.ndarray],
    annotations: dict,
    thresholds: list[float],
    rng: np.random.Generator,
    provenance: Provenance,
) -> dict:
    """The metrics of one shot set's predictions (files ``paths``) on its query shapes;
    ``rng`` draws the random baseline's points."""
    category = provenance.category
    predictions, known = [], set()
    for path in paths:
        with rebuild_on_error(path):
            content = load_json_artifact(path, prediction_header(provenance, path))
            for prediction in content["predictions"]:
                check_prediction(path, prediction, geodesics)
        predictions += content["predictions"]
        known.update(int(k) for k in content["known_semantic_ids"])
    if not predictions:
        raise DataError(f"{category}: no test shape was predicted (check dataset.max_test_shapes)")
    model_ids = [p["model_id"] for p in predictions]
    missing = [m for m in model_ids if m not in geodesics or m not in annotations]
    if missing:
        raise DataError(f"{category}: predictions for unknown shapes {missing[:3]}")
    if len(set(model_ids)) != len(model_ids):
        raise DataError(f"{category} {name}: a shape is predicted twice in {list(paths)[:3]}")
    truths = [annotations[m] for m in model_ids]
    unseen = unseen_keypoints(truths, known)
    if unseen["keypoints"]:
        print(
            f"WARNING: {category} {name}: {unseen['keypoints']} of {unseen['total']} "
            f"ground-truth keypoints ({unseen['shapes']} test shapes) have semantic ids "
            f"{unseen['semantic_ids']} never labelled in the shots; they count as misses in PCK"
        )
    geos = [geodesics[m] for m in model_ids]
    preds = [
        {"indices": np.asarray(p["indices"]), "semantic_ids": np.asarray(p["semantic_ids"])}
        for p in predictions
    ]
    randoms = [
        {
            "indices": random_baseline_indices(len(g), len(p["indices"]), rng),
            "semantic_ids": p["semantic_ids"],
        }
        for p, g in zip(preds, geos, strict=True)
    ]
    method = evaluate_category(preds, truths, geos, thresholds)
    baseline = evaluate_category(randoms, truths, geos, thresholds)
    columns = (
        [p["indices"] for p in preds],
        [p["semantic_ids"] for p in preds],
        [t.point_indices for t in truths],
        [t.semantic_ids for t in truths],
        geos,
        thresholds,
    )
    per_keypoint = per_keypoint_pck(*columns)
    print(
        f"{category} {name}: {len(model_ids)} query shapes, mIoU@{thresholds[-1]} = "
        f"{method['miou'].iloc[-1]:.3f}"
    )
    return {
        "name": name,
        "test_shapes": model_ids,
        "miou": method["miou"].tolist(),
        "pck": method["pck"].tolist(),
        "baseline_miou": baseline["miou"].tolist(),
        "baseline_pck": baseline["pck"].tolist(),
        "iou_counts": iou_counts(columns[0], columns[2], geos, thresholds).tolist(),
        "pck_counts": pck_counts(*columns).tolist(),
        "unseen_semantic_ids": unseen["semantic_ids"],
        "unseen_keypoints": unseen["keypoints"],
        "ground_truth_keypoints": unseen["total"],
        "per_keypoint_pck": {str(k): np.asarray(v).tolist() for k, v in per_keypoint.items()},
    }


def pck_counts(
    pred_idx: PerShape,
    pred_ids: PerShape,
    gt_idx: PerShape,
    gt_ids: PerShape,
    geodesics: Sequence[np.ndarray],
    thresholds: Sequence[float],
) -> np.ndarray:
    """(S, 2, T) int64 per shape: ground-truth keypoints hit at each threshold and keypoints,
    the counts :func:`bt3d.metrics.pck_curve` pools (each shape's PCK times its keypoints)."""
    out = np.zeros((len(gt_idx), 2, len(thresholds)), dtype=np.int64)
    for i, n in enumerate(len(g) for g in gt_idx):
        if n:
            one = (pred_idx[i : i + 1], pred_ids[i : i + 1], gt_idx[i : i + 1],
                   gt_ids[i : i + 1], geodesics[i : i + 1])  # fmt: skip
            out[i, 0] = np.rint(pck_curve(*one, thresholds) * n)
            out[i, 1] = n
    return out


def check_prediction(path: str, prediction, geodesics: dict) -> None:
    """CacheError naming ``path`` and the model unless ``prediction`` holds integer point
    indices, one per semantic id, each in [0, N) for the shape's N points."""
    if not isinstance(prediction, dict) or "model_id" not in prediction:
        raise CacheError(f"{path}: a prediction without a model_id: {str(prediction)[:80]}")
    where = f"{path}: model {prediction['model_id']}"
    indices, semantic_ids = prediction.get("indices"), prediction.get("semantic_ids")
    for name, values in (("indices", indices), ("semantic_ids", semantic_ids)):
        if not isinstance(values, list) or not all(_is_int(v) for v in values):
            raise CacheError(f"{where}: {name} must be a list of integers, got {str(values)[:80]}")
    if len(indices) != len(semantic_ids):
        raise CacheError(
            f"{where}: {len(indices)} point indices for {len(semantic_ids)} semantic ids"
        )
    if prediction["model_id"] in geodesics:
        n_points = len(geodesics[prediction["model_id"]])
        bad = [i for i in indices if not 0 <= i < n_points]
        if bad:
            raise CacheError(f"{where}: point index {bad[0]} out of range for {n_points} points")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def unseen_keypoints(truths, known: set[int]) -> dict:
    """Ground-truth keypoints whose semantic id no shot labels (PCK counts them as misses)."""
    ids = [int(k) for t in truths for k in t.semantic_ids]
    missing = [k for k in ids if k not in known]
    return {
        "semantic_ids": sorted(set(missing)),
        "keypoints": len(missing),
        "total": len(ids),
        "shapes": sum(any(int(k) not in known for k in t.semantic_ids) for t in truths),
    }
