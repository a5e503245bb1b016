"""The run's tables from each variant's per-category metrics (rule ``aggregate``) and the
paired comparison of the variants (rule ``compare``).

``miou.csv`` (variant,category,threshold,miou,std,ci_low,ci_high,shot_sets,shapes: the mean
over shot sets, the std across them, a 95 % bootstrap interval over shot sets and shapes,
:mod:`bt3d.intervals`), ``pck.csv`` (the same with pck), ``per_keypoint.csv``
(variant,category,semantic_id,label,threshold,pck; label from the dataset's
keypoint_labels.json, empty when unknown), ``baseline.csv``
(variant,category,threshold,miou,pck: random points) and ``miou.md``: the paper's layout, one
row per category and variant (then the random baseline), one column per threshold, mIoU in
percent, then the intervals, then a note per category whose test shapes have keypoints no
shot labels, whose annotated shapes were skipped for lack of files, or whose split follows
its annotation file. ``results/<run>/manifest.json`` records what produced the tables: bt3d
version, git commit, the whole config, the seeds and each variant's predictions' config hash.
``comparison.csv`` holds each variant's paired difference to the reference variant.
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import bt3d
from bt3d.atomic import atomic_write
from bt3d.cache import config_hash, load_json_artifact, save_json_atomic
from bt3d.errors import DataError
from bt3d.intervals import Summary, interval, iou_ratio_counts, summarise
from bt3d.results import rebuild_on_error

METRICS = ("miou", "pck")  # the interval-bearing metrics and their counts' keys
COUNTS = {"miou": "iou_counts", "pck": "pck_counts"}


def read_metrics(metrics: Mapping[str, Sequence[str]]) -> dict[str, list[dict[str, Any]]]:
    """variant -> its per-category metrics (``metrics/<variant>/<category>.json``), in order;
    a corrupt file is deleted with its dependents for a rebuild."""
    loaded: dict[str, dict[str, Any]] = {}
    for path in {p for paths in metrics.values() for p in paths}:
        with rebuild_on_error(path):
            loaded[path] = load_json_artifact(path)
    return {variant: [loaded[p] for p in paths] for variant, paths in metrics.items()}


def summaries(
    metrics: Mapping[str, list[dict[str, Any]]], metric: str, resamples: int, seed: int
) -> dict[str, Summary]:
    """category -> :class:`bt3d.intervals.Summary` of ``metric`` (miou | pck) with the
    variants as arms, in ``metrics``' order; categories' draws are independent.

    Raises:
        DataError: variants scored on different shapes (they must share the split).
    """
    variants = list(metrics)
    out = {}
    for c, per_category in enumerate(zip(*metrics.values(), strict=True)):
        category = per_category[0]["category"]
        sets = []
        for k, first in enumerate(per_category[0]["shot_sets"]):
            arms = [m["shot_sets"][k] for m in per_category]
            for name, arm in zip(variants, arms, strict=True):
                if arm["test_shapes"] != first["test_shapes"] or arm["name"] != first["name"]:
                    raise DataError(
                        f"{category}: variants {variants[0]} and {name} were scored on different "
                        f"shapes in {first['name']}; rerun the workflow"
                    )
            counts = [np.asarray(arm[COUNTS[metric]], dtype=np.float64) for arm in arms]
            if metric == "miou":
                counts = [iou_ratio_counts(x) for x in counts]
            sets.append(np.stack(counts))
        out[category] = summarise(sets, resamples, [seed, c])
    return out


def write_tables(
    metrics_paths: Mapping[str, Sequence[str]],
    outputs: Mapping[str, str],
    config: Mapping[str, Any],
    predictions_params: Mapping[str, Mapping[str, Any]],
    resamples: int,
    seed: int,
) -> None:
    """The run's tables from the per-category metrics of each variant (``metrics_paths``:
    variant -> its files): ``outputs`` maps ``miou``, ``pck``, ``per_keypoint``,
    ``baseline`` (CSV), ``markdown`` and ``manifest`` to their paths. mIoU and PCK carry
    their mean over shot sets, std across them and a 95 % two-stage bootstrap interval
    (``resamples`` draws, ``seed``; :mod:`bt3d.intervals`)."""
    metrics = read_metrics(metrics_paths)
    first = next(iter(metrics.values()))
    notes = category_notes(first)
    tables = {name: interval_table(metrics, name, resamples, seed) for name in METRICS}
    base, per_kp = [], []
    for variant, per_category in metrics.items():
        for m in per_category:
            sets = m["shot_sets"]
            for i, t in enumerate(m["thresholds"]):
                base.append(
                    {
                        "variant": variant,
                        "category": m["category"],
                        "threshold": t,
                        "miou": np.mean([s["baseline_miou"][i] for s in sets]),
                        "pck": np.mean([s["baseline_pck"][i] for s in sets]),
                    }
                )
            ids = sorted({int(k) for s in sets for k in s["per_keypoint_pck"]})
            for sem in ids:
                curves = [
                    s["per_keypoint_pck"][str(sem)]
                    for s in sets
                    if str(sem) in s["per_keypoint_pck"]
                ]
                for i, t in enumerate(m["thresholds"]):
                    per_kp.append(
                        {
                            "variant": variant,
                            "category": m["category"],
                            "semantic_id": sem,
                            "label": m["keypoint_labels"].get(str(sem), ""),
                            "threshold": t,
                            "pck": np.mean([c[i] for c in curves]),
                        }
                    )
    tables["per_keypoint"] = pd.DataFrame(
        per_kp, columns=["variant", "category", "semantic_id", "label", "threshold", "pck"]
    )
    tables["baseline"] = pd.DataFrame(
        base, columns=["variant", "category", "threshold", "miou", "pck"]
    )
    for name, df in tables.items():
        with atomic_write(outputs[name], mode="w") as fh:
            df.to_csv(fh, index=False, float_format="%.6g")
    with atomic_write(outputs["markdown"], mode="w") as fh:
        fh.write(markdown_table(tables["miou"], tables["baseline"]))
        fh.write("".join(f"\n{note}\n" for note in notes))
    save_json_atomic(outputs["manifest"], manifest(config, predictions_params, notes))


def interval_table(
    metrics: Mapping[str, list[dict[str, Any]]], metric: str, resamples: int, seed: int
) -> pd.DataFrame:
    """Long table of ``metric`` per variant, category and threshold: the mean over shot
    sets, ``std`` across them (empty with one), the 95 % interval ``ci_low``/``ci_high``,
    ``shot_sets`` and ``shapes`` (query shapes per shot set, the mean when they differ)."""
    rows = []
    thresholds = next(iter(metrics.values()))[0]["thresholds"]  # one config: the same for all
    for category, summary in summaries(metrics, metric, resamples, seed).items():
        low, high = interval(summary.draws)
        for v, variant in enumerate(metrics):
            for i, t in enumerate(thresholds):
                rows.append(
                    {
                        "variant": variant,
                        "category": category,
                        "threshold": t,
                        metric: summary.mean[v, i],
                        "std": summary.std[v, i],
                        "ci_low": low[v, i],
                        "ci_high": high[v, i],
                        "shot_sets": summary.shot_sets,
                        "shapes": float(np.mean(summary.shapes)),
                    }
                )
    columns = ["variant", "category", "threshold", metric, "std", "ci_low", "ci_high"]
    frame = pd.DataFrame(rows, columns=[*columns, "shot_sets", "shapes"])
    return frame.sort_values(["variant", "category"], kind="stable", key=_order(frame))


def _order(frame: pd.DataFrame):
    """Sort key keeping the variants' and categories' first-seen order."""

    def key(column: pd.Series) -> pd.Series:
        first = {value: i for i, value in enumerate(dict.fromkeys(frame[column.name]))}
        return column.map(first)

    return key


def category_notes(per_category: Sequence[Mapping[str, Any]]) -> list[str]:
    """The notes under miou.md: keypoints no shot labels, split by annotation order,
    shapes skipped for lack of files (the same for every variant)."""
    notes = []
    for m in per_category:
        for s in m["shot_sets"]:
            if s["unseen_keypoints"]:
                which = f" ({s['name']})" * (len(m["shot_sets"]) > 1)
                notes.append(
                    f"Note: {m['category']}{which}: {s['unseen_keypoints']} of "
                    f"{s['ground_truth_keypoints']} ground-truth keypoints have semantic ids "
                    f"{s['unseen_semantic_ids']} that no labelled shot has; PCK counts them as "
                    "misses."
                )
        if m["sample_order"].endswith(".json"):
            notes.append(
                f"Note: {m['category']}: shots and test shapes follow the record order of "
                f"{m['sample_order']}, not the paper's sample order (benchmark_indices.csv)."
            )
        if m["skipped_shapes"]:
            notes.append(
                f"Note: {m['category']}: {m['skipped_shapes']} of {m['annotated_shapes']} "
                "annotated shapes lack their point cloud or mesh and were left out of the "
                "split (dataset.missing_shapes: skip)."
            )
    return notes


def manifest(
    config: Mapping[str, Any], predictions_params: Mapping[str, Any], notes: list[str]
) -> dict[str, Any]:
    """What produced this run's tables: versions, commit, config, seeds, and the config hash
    of each variant's predictions (``predictions_params``: variant -> their settings)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parents[1]), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    cfg = dict(config)
    return {
        "bt3d_version": bt3d.__version__,
        "git_commit": commit,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "predictions_config_hash": {
            variant: config_hash(params) for variant, params in predictions_params.items()
        },
        "seeds": {
            "optimiser": cfg["optimiser"]["seed"],
            "baseline": cfg["evaluation"]["baseline_seed"],
            "bootstrap": cfg["evaluation"]["bootstrap_seed"],
            "synthetic_dataset": cfg["dataset"]["synthetic"]["seed"],
        },
        "notes": notes,
        "config": cfg,
    }


def markdown_table(miou: pd.DataFrame, baseline: pd.DataFrame) -> str:
    """The paper's layout: rows = categories (each variant, then 'random'), columns =
    thresholds, mIoU in percent (the mean over shot sets); then the same rows with the
    95 % interval (and, with several shot sets, the std across them)."""
    first = miou["variant"].iloc[0]
    rand = baseline[baseline["variant"] == first][["category", "threshold", "miou"]]
    both = pd.concat(
        [miou.rename(columns={"variant": "method"}), rand.assign(method="random")],
        ignore_index=True,
    )
    order = {c: i for i, c in enumerate(dict.fromkeys(miou["category"]))}
    both = both.sort_values("category", kind="stable", key=lambda c: c.map(order))
    shot_sets = int(miou["shot_sets"].iloc[0])

    def wide(values: str, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.pivot_table(
            index=["category", "method"], columns="threshold", values=values, sort=False,
            dropna=False,
        )  # fmt: skip

    means = wide("miou", both)
    thresholds = list(means.columns)
    header = "| category | method | " + " | ".join(f"{t:.2f}" for t in thresholds) + " |"
    rule = "|---|---|" + "---:|" * len(thresholds)
    over = f", mean over {shot_sets} shot sets" if shot_sets > 1 else ""
    lines = [f"mIoU (%) per geodesic distance threshold{over}", "", header, rule]
    for (category, name), values in means.iterrows():
        cells = " | ".join(f"{100 * v:.1f}" for v in values)
        lines.append(f"| {category} | {name} | {cells} |")
    ours = miou.rename(columns={"variant": "method"})
    low, high, std = (wide(c, ours) for c in ("ci_low", "ci_high", "std"))
    spread = " and std across shot sets" if shot_sets > 1 else ""
    lines += [
        "",
        f"95 % bootstrap interval{spread} (shot sets, then test shapes, resampled)",
        "",
        header,
        rule,
    ]
    for (category, name), lo in low.iterrows():
        hi, sd = high.loc[(category, name)], std.loc[(category, name)]
        cells = " | ".join(
            f"{100 * a:.1f}-{100 * b:.1f}" + (f" ±{100 * c:.1f}" if shot_sets > 1 else "")
            for a, b, c in zip(lo, hi, sd, strict=True)
        )
        lines.append(f"| {category} | {name} | {cells} |")
    return "\n".join(lines) + "\n"


def comparison_table(
    metrics: Mapping[str, list[dict[str, Any]]], reference: str, resamples: int, seed: int
) -> pd.DataFrame:
    """Each variant's paired difference to ``reference`` per metric (miou, pck), category
    (and ``mean``, the mean over categories) and threshold: ``difference`` = variant -
    reference of the mean over shot sets, with its 95 % interval from the same two-stage
    bootstrap draws for both (paired over shot sets and shapes), and both values."""
    variants = list(metrics)
    if reference not in metrics:
        raise DataError(f"comparison reference {reference!r} is not a variant of {variants}")
    ref = variants.index(reference)
    thresholds = next(iter(metrics.values()))[0]["thresholds"]
    rows = []
    for metric in METRICS:
        per_category = summaries(metrics, metric, resamples, seed)
        overall = Summary(
            np.mean([s.mean for s in per_category.values()], axis=0),
            np.full_like(next(iter(per_category.values())).mean, np.nan),
            np.mean([s.draws for s in per_category.values()], axis=0),
            next(iter(per_category.values())).shot_sets,
            [n for s in per_category.values() for n in s.shapes],
        )
        for category, summary in {**per_category, "mean": overall}.items():
            for v, variant in enumerate(variants):
                if v == ref:
                    continue
                low, high = interval(summary.draws[:, v] - summary.draws[:, ref])
                for i, t in enumerate(thresholds):
                    rows.append(
                        {
                            "variant": variant,
                            "reference": reference,
                            "metric": metric,
                            "category": category,
                            "threshold": t,
                            "difference": summary.mean[v, i] - summary.mean[ref, i],
                            "ci_low": low[i],
                            "ci_high": high[i],
                            "value": summary.mean[v, i],
                            "reference_value": summary.mean[ref, i],
                            "shot_sets": summary.shot_sets,
                        }
                    )
    return pd.DataFrame(rows)


def write_comparison(
    metrics: Mapping[str, list[dict[str, Any]]],
    reference: str,
    resamples: int,
    seed: int,
    output: str,
) -> pd.DataFrame:
    """:func:`comparison_table` written atomically to ``output`` (CSV); returned."""
    table = comparison_table(metrics, reference, resamples, seed)
    with atomic_write(output, mode="w") as fh:
        table.to_csv(fh, index=False, float_format="%.6g")
    return table
