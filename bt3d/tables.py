"""The run's tables from the per-category metrics (rule ``aggregate``).

``miou.csv`` (category,threshold,miou), ``pck.csv`` (category,threshold,pck),
``per_keypoint.csv`` (category,semantic_id,label,threshold,pck; label from the dataset's
keypoint_labels.json, empty when unknown), ``baseline.csv``
(category,threshold,miou,pck: random points) and ``miou.md``: the paper's layout, one row
per category (method, then random baseline), one column per threshold, mIoU in percent,
followed by a note per category whose test shapes have keypoints no shot labels, whose
annotated shapes were skipped for lack of files, or whose split follows its annotation file.
``results/<run>/manifest.json`` records what produced the tables: bt3d version, git commit,
the whole config, the seeds and the predictions' config hash.
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
from bt3d.results import rebuild_on_error


def write_tables(
    metrics_paths: Sequence[str],
    outputs: Mapping[str, str],
    config: Mapping[str, Any],
    predictions_params: Mapping[str, Any],
) -> None:
    """The run's tables from the per-category metrics: ``outputs`` maps ``miou``, ``pck``,
    ``per_keypoint``, ``baseline`` (CSV), ``markdown`` and ``manifest`` to their paths."""
    rows, pck, base, per_kp, notes = [], [], [], [], []
    for path in metrics_paths:
        with rebuild_on_error(path):
            m = load_json_artifact(path)
        if m["unseen_keypoints"]:
            notes.append(
                f"Note: {m['category']}: {m['unseen_keypoints']} of "
                f"{m['ground_truth_keypoints']} ground-truth keypoints have semantic ids "
                f"{m['unseen_semantic_ids']} that no labelled shot has; PCK counts them as misses."
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
        for i, t in enumerate(m["thresholds"]):
            rows.append({"category": m["category"], "threshold": t, "miou": m["miou"][i]})
            pck.append({"category": m["category"], "threshold": t, "pck": m["pck"][i]})
            base.append(
                {
                    "category": m["category"],
                    "threshold": t,
                    "miou": m["baseline_miou"][i],
                    "pck": m["baseline_pck"][i],
                }
            )
            for sem, curve in m["per_keypoint_pck"].items():
                per_kp.append(
                    {
                        "category": m["category"],
                        "semantic_id": int(sem),
                        "label": m["keypoint_labels"].get(sem, ""),
                        "threshold": t,
                        "pck": curve[i],
                    }
                )
    tables = {
        "miou": pd.DataFrame(rows, columns=["category", "threshold", "miou"]),
        "pck": pd.DataFrame(pck, columns=["category", "threshold", "pck"]),
        "per_keypoint": pd.DataFrame(
            per_kp, columns=["category", "semantic_id", "label", "threshold", "pck"]
        ),
        "baseline": pd.DataFrame(base, columns=["category", "threshold", "miou", "pck"]),
    }
    for name, df in tables.items():
        with atomic_write(outputs[name], mode="w") as fh:
            df.to_csv(fh, index=False, float_format="%.6g")
    with atomic_write(outputs["markdown"], mode="w") as fh:
        fh.write(markdown_table(tables["miou"], tables["baseline"]))
        fh.write("".join(f"\n{note}\n" for note in notes))
    save_json_atomic(outputs["manifest"], manifest(config, predictions_params, notes))


def manifest(
    config: Mapping[str, Any], predictions_params: Mapping[str, Any], notes: list[str]
) -> dict[str, Any]:
    """What produced this run's tables: versions, commit, config, seeds, config hash."""
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
        "predictions_config_hash": config_hash(predictions_params),
        "seeds": {
            "optimiser": cfg["optimiser"]["seed"],
            "baseline": cfg["evaluation"]["baseline_seed"],
            "synthetic_dataset": cfg["dataset"]["synthetic"]["seed"],
        },
        "notes": notes,
        "config": cfg,
    }


def markdown_table(miou: pd.DataFrame, baseline: pd.DataFrame) -> str:
    """Rows = categories (method, then 'random'), columns = thresholds, values in percent."""

    method = miou.assign(method="ours")
    rand = baseline[["category", "threshold", "miou"]].assign(method="random")
    both = pd.concat([method, rand], ignore_index=True)
    wide = both.pivot_table(
        index=["category", "method"], columns="threshold", values="miou", sort=False
    )
    thresholds = list(wide.columns)
    header = "| category | method | " + " | ".join(f"{t:.2f}" for t in thresholds) + " |"
    rule = "|---|---|" + "---:|" * len(thresholds)
    lines = ["mIoU (%) per geodesic distance threshold", "", header, rule]
    for (category, name), values in wide.iterrows():
        cells = " | ".join(f"{100 * v:.1f}" for v in values)
        lines.append(f"| {category} | {name} | {cells} |")
    return "\n".join(lines) + "\n"
