"""Shot sets and variants: the split into K shot sets, which artifacts variants share, and the
means, spreads and two-stage bootstrap intervals of the tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bt3d.errors import ConfigError, DataError
from bt3d.intervals import interval, iou_ratio_counts, pooled, summarise
from bt3d.selection import CategorySelection, few_shot_split, query_part_names, shot_set_index
from bt3d.settings import default_config, merge
from bt3d.tables import comparison_table, interval_table, markdown_table
from bt3d.variants import stage_keys, variants_of

CHAIR = "03001627"
ORDER = [(CHAIR, f"m{i}") for i in range(10)]


# ------------------------------------------------------------------------------ split


def test_shot_sets_are_consecutive_blocks_and_query_every_other_shape() -> None:
    labelled, test = few_shot_split(ORDER, CHAIR, 2, offset=1, shot_sets=3, max_test=2)
    assert labelled == ["m1", "m2", "m3", "m4", "m5", "m6"] and test == ["m7", "m8"]
    selection = CategorySelection("chair", labelled, test, [], "order.csv", shots=2)
    assert selection.shot_sets == 3
    assert [selection.shot_set(k) for k in range(3)] == [["m1", "m2"], ["m3", "m4"], ["m5", "m6"]]
    assert selection.queries(1) == ["m1", "m2", "m5", "m6", "m7", "m8"]
    for k in range(3):  # a shot set never queries its own shapes, and misses no other
        assert set(selection.queries(k)) == set(labelled + test) - set(selection.shot_set(k))
    with pytest.raises(ConfigError, match="shot set 3 does not exist"):
        selection.shot_set(3)


def test_one_shot_set_is_the_papers_split() -> None:
    assert few_shot_split(ORDER, CHAIR, 3, shot_sets=1) == few_shot_split(ORDER, CHAIR, 3)
    assert query_part_names(1, 2) == ["shard-0", "shard-1"]  # the shots are never queried
    assert query_part_names(4, 2) == ["shots", "shard-0", "shard-1"]
    assert shot_set_index("set-12") == 12
    with pytest.raises(ConfigError, match="not a shot set name"):
        shot_set_index("shots")


def test_too_few_shapes_for_the_shot_sets_is_named() -> None:
    with pytest.raises(DataError, match="fewer than offset 0 \\+ shots 3 x shot_sets 4"):
        few_shot_split(ORDER, CHAIR, 3, shot_sets=4)
    with pytest.raises(ConfigError, match="shot_sets >= 1"):
        few_shot_split(ORDER, CHAIR, 3, shot_sets=0)


# ------------------------------------------------------------------------------ variants


def config_with(variants: list[dict]) -> dict:
    return merge(default_config(), {"variants": variants})


def test_variants_share_the_artifacts_whose_settings_they_share() -> None:
    variants = variants_of(
        config_with(
            [
                {"name": "block9", "config": {}},
                {"name": "reference", "config": {"optimiser": {"mode": "reference"}}},
                {"name": "sum", "config": {"optimiser": {"prototype_reduction": "sum"}}},
                {"name": "last", "config": {"backbone": {"layer": "last_norm"}}},
                {"name": "again", "config": {"backbone": {"layer": "block9"}}},
            ]
        )
    )
    keys = stage_keys(variants)
    assert {name: k["features"] for name, k in keys.items()} == {
        "block9": "block9", "reference": "block9", "sum": "block9", "last": "last",
        "again": "block9",
    }  # fmt: skip
    assert {name: k["prototypes"] for name, k in keys.items()} == {
        "block9": "block9", "reference": "block9", "sum": "sum", "last": "last",
        "again": "block9",
    }  # fmt: skip
    assert keys["reference"]["predictions"] == "reference" and keys["again"]["predictions"] == (
        "block9"
    )
    assert {k["geodesics"] for k in keys.values()} == {"block9"}


def test_no_variants_is_one_variant_of_the_config_itself() -> None:
    config = default_config()
    (variant,) = variants_of(config)
    assert variant.name == "bt3d" and variant.config == config


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([{"name": "a", "config": {}}, {"name": "a", "config": {}}],
         r"variants: the names \['a'\] are given more than once"),
        ([{"name": "a", "config": {"features": {"knn": 10}}}],
         r"variants\[0\] \(a\).config changes the geodesics"),
        ([{"name": "a", "config": {}}, {"name": "b", "config": {"optimiser": {"mode": "slow"}}}],
         r"variants\[1\] \(b\).config merged over the config: optimiser.mode: 'slow' is not one"),
    ],
)  # fmt: skip
def test_bad_variants_are_named(variants: list[dict], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        variants_of(config_with(variants))


# ------------------------------------------------------------------------------ intervals


def test_pooled_ratios_match_the_metrics_definitions() -> None:
    counts = np.array([[[4, 4], [1, 0], [2, 1]], [[2, 2], [0, 3], [0, 0]]])  # (S, 3, T)
    from bt3d.metrics import iou_from_counts

    np.testing.assert_allclose(pooled(iou_ratio_counts(counts)), iou_from_counts(counts))


def random_sets(rng: np.random.Generator, arms: int, sizes: list[int], t: int = 3) -> list:
    sets = []
    for n in sizes:
        den = rng.integers(1, 6, size=(1, n, 1, t)).repeat(arms, axis=0)
        num = rng.integers(0, 6, size=(arms, n, 1, t)) % (den + 1)
        sets.append(np.concatenate([num, den], axis=2))
    return sets


def test_summary_mean_std_and_interval_over_shot_sets() -> None:
    rng = np.random.default_rng(1)
    sets = random_sets(rng, 2, [7, 9, 8])
    summary = summarise(sets, 500, seed=3)
    per_set = np.stack([pooled(s) for s in sets])  # (K, V, T)
    np.testing.assert_allclose(summary.mean, per_set.mean(axis=0))
    np.testing.assert_allclose(summary.std, per_set.std(axis=0, ddof=1))
    low, high = interval(summary.draws)
    assert summary.draws.shape == (500, 2, 3) and (low <= high).all()
    assert (low <= summary.mean + 1e-12).all() and (summary.mean <= high + 1e-12).all()
    again = summarise(sets, 500, seed=3)
    np.testing.assert_array_equal(again.draws, summary.draws)  # seeded


def test_one_shot_set_has_no_spread_but_a_shape_interval() -> None:
    rng = np.random.default_rng(2)
    (one,) = random_sets(rng, 1, [12])
    summary = summarise([one], 400, seed=0)
    assert np.isnan(summary.std).all() and summary.shot_sets == 1
    low, high = interval(summary.draws)
    assert (high - low > 0).any()  # shapes differ, so resampling them moves the value
    same = np.repeat(one[:, :1], 12, axis=1)  # every shape alike: no spread at all
    flat = summarise([same], 200, seed=0)
    np.testing.assert_allclose(flat.draws, np.broadcast_to(flat.mean, flat.draws.shape))


def test_paired_draws_cancel_for_identical_arms_and_cover_shot_set_spread() -> None:
    rng = np.random.default_rng(4)
    sets = random_sets(rng, 1, [6, 6, 6, 6])
    twins = [np.concatenate([s, s]) for s in sets]
    summary = summarise(twins, 300, seed=1)
    np.testing.assert_array_equal(summary.draws[:, 0], summary.draws[:, 1])  # paired draws
    # shot sets that differ widen the interval beyond what resampling shapes alone gives
    low, high = interval(summary.draws)
    assert (high - low)[0].max() > 0


def test_summary_refuses_mismatched_arms() -> None:
    rng = np.random.default_rng(5)
    a, b = random_sets(rng, 2, [4]), random_sets(rng, 3, [4])
    with pytest.raises(DataError, match="same V"):
        summarise([a[0], b[0]], 10, seed=0)


# ------------------------------------------------------------------------------ tables


def metrics_file(shapes: list[list[str]], sets: list[np.ndarray], extra_misses: int) -> dict:
    """A chair metrics JSON of one variant; ``sets`` per shot set (S, 2, T) keypoints hit and
    keypoints per shape (PCK counts); IoU counts with no false positive and
    ``extra_misses`` more false negatives than PCK's misses."""
    out = {"category": "chair", "thresholds": [0.0, 0.05, 0.1], "sample_order": "order.csv",
           "skipped_shapes": 0, "annotated_shapes": 10, "keypoint_labels": {"0": "nose"},
           "shot_sets": []}  # fmt: skip
    for k, (ids, counts) in enumerate(zip(shapes, sets, strict=True)):
        hit, npos = counts[:, 0], counts[:, 1]
        iou = np.stack([npos, 0 * npos, npos - hit + extra_misses], axis=1)
        out["shot_sets"].append(
            {"name": f"set-{k}", "test_shapes": ids, "iou_counts": iou.tolist(),
             "pck_counts": counts.tolist(), "miou": [0.0] * 3, "pck": [0.0] * 3,
             "baseline_miou": [0.1] * 3, "baseline_pck": [0.2] * 3,
             "per_keypoint_pck": {"0": [0.5] * 3}, "unseen_keypoints": 0,
             "unseen_semantic_ids": [], "ground_truth_keypoints": 4}
        )  # fmt: skip
    return out


def two_variant_metrics() -> dict:
    """Variants a and b on three shot sets of five shapes: b misses one more keypoint per
    shape in IoU, and has the same PCK."""
    rng = np.random.default_rng(7)
    shapes = [[f"s{k}{i}" for i in range(5)] for k in range(3)]
    sets = [
        np.stack([rng.integers(0, 3, size=(5, 3)), rng.integers(3, 6, size=(5, 3))], axis=1)
        for _ in range(3)
    ]
    return {"a": [metrics_file(shapes, sets, 0)], "b": [metrics_file(shapes, sets, 1)]}


def test_interval_table_and_markdown_carry_mean_std_and_interval() -> None:
    metrics = two_variant_metrics()
    table = interval_table(metrics, "miou", 300, 0)
    assert list(table.columns) == ["variant", "category", "threshold", "miou", "std", "ci_low",
                                   "ci_high", "shot_sets", "shapes"]  # fmt: skip
    assert table["variant"].tolist() == ["a"] * 3 + ["b"] * 3
    assert (table["shot_sets"] == 3).all() and (table["shapes"] == 5).all()
    assert (table["ci_low"] <= table["miou"]).all() and (table["miou"] <= table["ci_high"]).all()
    base = pd.DataFrame(
        {"variant": "a", "category": "chair", "threshold": [0.0, 0.05, 0.1], "miou": 0.1}
    )
    text = markdown_table(table, base)
    assert "mean over 3 shot sets" in text and "std across shot sets" in text
    rows = [line.split("|")[2].strip() for line in text.splitlines() if line.startswith("| chair")]
    assert rows == ["a", "b", "random", "a", "b"]
    one = {v: [{**m[0], "shot_sets": m[0]["shot_sets"][:1]}] for v, m in metrics.items()}
    single = interval_table(one, "miou", 100, 0)
    assert single["std"].isna().all() and (single["shot_sets"] == 1).all()
    text = markdown_table(single, base)  # one shot set: intervals, no spread
    assert "shot sets" not in text.splitlines()[0] and "std" not in text and " ±" not in text
    interval_rows = text.split("95 % bootstrap interval")[1].splitlines()
    assert sum(line.startswith("| chair | a | ") for line in interval_rows) == 1


def test_comparison_is_paired_and_names_the_reference() -> None:
    metrics = two_variant_metrics()
    table = comparison_table(metrics, "a", 300, 0)
    assert set(table["variant"]) == {"b"} and set(table["reference"]) == {"a"}
    assert set(table["category"]) == {"chair", "mean"} and set(table["metric"]) == {"miou", "pck"}
    miou = table[(table["metric"] == "miou") & (table["category"] == "chair")]
    # b misses one more keypoint on every shape: worse everywhere, and since the draws are
    # paired, the interval excludes zero
    assert (miou["difference"] < 0).all() and (miou["ci_high"] < 0).all()
    np.testing.assert_allclose(miou["difference"], miou["value"] - miou["reference_value"])
    pck = table[table["metric"] == "pck"]  # same PCK counts: no difference at all
    assert (pck["difference"] == 0).all() and (pck["ci_low"] == 0).all()
    with pytest.raises(DataError, match="reference 'c' is not a variant"):
        comparison_table(metrics, "c", 10, 0)


def test_pck_counts_pool_to_the_pck_curve() -> None:
    from bt3d.evaluation import pck_counts
    from bt3d.metrics import pck_curve

    rng = np.random.default_rng(8)
    geos, pred_idx, pred_ids, gt_idx, gt_ids = [], [], [], [], []
    for n_gt in (3, 0, 5, 2):
        pts = rng.random((30, 3))
        geos.append(np.linalg.norm(pts[:, None] - pts[None], axis=-1))
        gt_idx.append(rng.choice(30, n_gt, replace=False))
        gt_ids.append(np.arange(n_gt))
        pred_idx.append(rng.choice(30, 4, replace=False))
        pred_ids.append(np.array([0, 1, 2, 7]))
    t = [0.0, 0.2, 0.5, 2.0]
    counts = pck_counts(pred_idx, pred_ids, gt_idx, gt_ids, geos, t)
    assert counts.dtype == np.int64 and counts[1].sum() == 0  # a shape without keypoints
    np.testing.assert_array_equal(counts[:, 1, 0], [3, 0, 5, 2])
    np.testing.assert_allclose(
        pooled(counts, axis=0), pck_curve(pred_idx, pred_ids, gt_idx, gt_ids, geos, t)
    )
