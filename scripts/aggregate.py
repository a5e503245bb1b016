"""Rule ``aggregate``: the run's tables from the per-category metrics.

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

from _common import REPO, rebuild_on_error, run


def main(snakemake) -> None:
    import pandas as pd

    from bt3d.cache import atomic_write, load_json_artifact, save_json_atomic

    rows, pck, base, per_kp, notes = [], [], [], [], []
    for path in snakemake.input.metrics:
        with rebuild_on_error(path):
            m = load_json_artifact(path)
        if m.get("unseen_keypoints"):
            notes.append(
                f"Note: {m['category']}: {m['unseen_keypoints']} of "
                f"{m['ground_truth_keypoints']} ground-truth keypoints have semantic ids "
                f"{m['unseen_semantic_ids']} that no labelled shot has; PCK counts them as misses."
            )
        if m.get("sample_order", "").endswith(".json"):
            notes.append(
                f"Note: {m['category']}: shots and test shapes follow the record order of "
                f"{m['sample_order']}, not the paper's sample order (benchmark_indices.csv)."
            )
        if m.get("skipped_shapes"):
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
                        "label": m.get("keypoint_labels", {}).get(sem, ""),
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
        with atomic_write(getattr(snakemake.output, name), mode="w") as fh:
            df.to_csv(fh, index=False, float_format="%.6g")
    with atomic_write(snakemake.output.markdown, mode="w") as fh:
        fh.write(markdown_table(tables["miou"], tables["baseline"]))
        fh.write("".join(f"\n{note}\n" for note in notes))
    save_json_atomic(snakemake.output.manifest, manifest(snakemake, notes))


def manifest(snakemake, notes: list[str]) -> dict:
    """What produced this run's tables: versions, commit, config, seeds, config hash."""
    import platform
    import subprocess

    import numpy as np

    import bt3d
    from bt3d.cache import config_hash

    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    cfg = dict(snakemake.params.config)
    return {
        "bt3d_version": bt3d.__version__,
        "git_commit": commit,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "predictions_config_hash": config_hash(snakemake.params.provenance["predictions"]),
        "seeds": {
            "optimiser": cfg["optimiser"].get("seed"),
            "baseline": cfg["evaluation"].get("baseline_seed", 0),
            "synthetic_dataset": cfg["dataset"].get("synthetic", {}).get("seed"),
        },
        "notes": notes,
        "config": cfg,
    }


def markdown_table(miou, baseline) -> str:
    """Rows = categories (method, then 'random'), columns = thresholds, values in percent."""
    import pandas as pd

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


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
