"""Ablation on the embedded dataset: from the authors' conventions, one of ours at a time.

Arms (all with the offline DINOv2 ViT-S/14 after the final norm, float32, nearest patch,
sigma 0.01, the same views, shapes and shots):

* ``paper``: the authors' conventions, as ``config/paper.yaml`` selects them:
  ``features.visibility_layers: 5``, ``features.labelled: annotated_xyz``,
  ``optimiser.prototype_reduction: sum``, ``optimiser.mode: reference`` (5000 Adam steps);
* one arm per convention with only that one switched to our default (``visibility_layers:
  1``, ``labelled: points``, ``prototype_reduction: mean``, ``mode: fast``);
* ``ours``: all four switched (``config.yaml``'s defaults for these four).

Each shape's features are computed once per visibility setting (the only convention that
changes them) and cached under ``--root``. The change of mean mIoU over the categories from
``paper`` to each arm gets a paired bootstrap interval (test shapes resampled within each
category, the same draw for both arms; :func:`bt3d.metrics.paired_bootstrap_iou`).

Usage::

    PYTHONPATH=. python benchmarks/ablation.py [--max-test 8] [--n-azimuth 6 --n-polar 3] \
        [--out docs/findings/ablation.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedded_accuracy import _dataset, _geodesics  # noqa: E402

from bt3d.backbones import get_backbone  # noqa: E402
from bt3d.cache import CacheError, load_arrays, save_arrays  # noqa: E402
from bt3d.fewshot import build_prototypes, labelled_shape  # noqa: E402
from bt3d.io import KeypointNetDataset, class_id_of  # noqa: E402
from bt3d.metrics import iou_counts, iou_from_counts, paired_bootstrap_iou  # noqa: E402
from bt3d.optimize import optimise_batch  # noqa: E402
from bt3d.pipeline import extract_shape_features  # noqa: E402
from bt3d.selection import few_shot_split  # noqa: E402
from bt3d.settings import FeatureSettings, load_config  # noqa: E402

THRESHOLDS = np.round(np.arange(11) * 0.01, 2)
REPORTED = (0.05, 0.10)
PAPER = {"visibility_layers": 5, "labelled": "annotated_xyz", "reduction": "sum",
         "mode": "reference"}  # fmt: skip
OURS = {"visibility_layers": 1, "labelled": "points", "reduction": "mean", "mode": "fast"}
# arm name -> its conventions; what each single switch is called in the table
SWITCHES = {
    "visibility_layers": "visibility: nearest face only (`visibility_layers: 1`)",
    "labelled": "labelled shapes: smoothed point features (`labelled: points`)",
    "reduction": "target distances averaged (`prototype_reduction: mean`)",
    "mode": "fast optimiser (`mode: fast`)",
}
LABELS = {"paper": "paper's conventions (`config/paper.yaml`)",
          "ours": "all switched (our defaults)"}  # fmt: skip
BACKBONE, LAYER, PRECISION = "dinov2_vits14_offline", "last_norm", "float32"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/bt3d-ablation"))
    p.add_argument("--categories", nargs="+", default=["airplane", "chair", "table"])
    p.add_argument("--shapes", type=int, default=24, help="synthetic shapes per category")
    p.add_argument("--shots", type=int, default=3)
    p.add_argument("--max-test", type=int, default=None, help="test shapes per category")
    p.add_argument("--n-azimuth", type=int, default=12)
    p.add_argument("--n-polar", type=int, default=5)
    p.add_argument("--steps", type=int, default=5000, help="reference optimiser steps")
    p.add_argument(
        "--solver",
        choices=("reference", "fast"),
        default="reference",
        help="optimiser of every arm but the optimiser switch: reference (the paper's) or "
        "fast (then there is no optimiser switch: the reference takes minutes per shape on CPU)",
    )
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    return p.parse_args(argv)


def arms(solver: str = "reference") -> dict[str, dict]:
    """Arm name -> conventions: paper, each single switch to ours, all switched.

    ``solver`` is the optimiser of the ``paper`` arm and of the switches (with ``"fast"``
    there is no optimiser switch)."""
    base = {**PAPER, "mode": solver}
    out = {"paper": base}
    for key in SWITCHES:
        if base[key] != OURS[key]:
            out[key] = {**base, key: OURS[key]}
    out["ours"] = dict(OURS)
    return out


def _shape_features(cache: Path, dataset, category, model_id, geodesic, views, layers, get):
    """:class:`ShapeFeatures` arrays (features, unsmoothed, counts) of one shape, cached;
    ``"computed"`` says whether they were computed now (else read from the cache)."""
    n_azimuth, n_polar = views
    path = cache / f"features-{n_azimuth}x{n_polar}-vis{layers}" / category / f"{model_id}.npz"
    expected = {"model_id": model_id, "backbone": BACKBONE, "layer": LAYER,
                "precision": PRECISION, "visibility_layers": layers}  # fmt: skip
    try:
        return {**load_arrays(path, expected)[0], "computed": False}
    except CacheError:
        pass
    config = load_config(
        overrides={
            "render": {"n_azimuth": n_azimuth, "n_polar": n_polar},
            "backbone": {"precision": PRECISION},
            "dataset": {"normalise": False},  # the synthetic shapes are at unit size
            "features": {"visibility_layers": layers},
        }
    )
    mesh, points = dataset.load_mesh(category, model_id), dataset.load_points(category, model_id)
    settings = FeatureSettings.from_config(config)
    shape = extract_shape_features(mesh, points, get(), settings, geodesic)
    arrays = {"features": shape.features, "unsmoothed": shape.unsmoothed, "counts": shape.counts}
    save_arrays(path, arrays, expected)
    return {**arrays, "computed": True}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    data = _dataset(args.root, args.categories, args.shapes)
    cache = args.root / "cache"
    dataset = KeypointNetDataset(data)
    order = dataset.sample_order()
    views = (args.n_azimuth, args.n_polar)
    backbone: list[torch.nn.Module] = []

    def get() -> torch.nn.Module:
        if not backbone:
            backbone.append(get_backbone(BACKBONE, "cpu", layer=LAYER))
        return backbone[0]

    conventions = arms(args.solver)
    counts: dict[str, list[np.ndarray]] = {name: [] for name in conventions}
    groups: list[str] = []
    seconds = {"features": 0.0, **{name: 0.0 for name in conventions}}
    computed = [0, 0]  # shape features computed now, shape features used
    for category in args.categories:
        annotations = dataset.annotations(category)
        shots, tests = few_shot_split(
            order, class_id_of(category), args.shots, max_test=args.max_test
        )
        geo = {m: _geodesics(cache, dataset, category, m) for m in shots + tests}
        t0 = time.perf_counter()
        feats = {
            layers: {
                m: _shape_features(cache, dataset, category, m, geo[m][0], views, layers, get)
                for m in shots + tests
            }
            for layers in sorted({a["visibility_layers"] for a in conventions.values()})
        }
        seconds["features"] += time.perf_counter() - t0
        done = [a["computed"] for by_shape in feats.values() for a in by_shape.values()]
        computed = [computed[0] + sum(done), computed[1] + len(done)]
        gt = [annotations[m].point_indices for m in tests]
        raw = [geo[m][0] for m in tests]
        groups += [category] * len(tests)
        for name, arm in conventions.items():
            t0 = time.perf_counter()
            f = feats[arm["visibility_layers"]]
            labelled = [
                labelled_shape(
                    f[m]["features"], geo[m][1], annotations[m].semantic_ids,
                    annotations[m].point_indices, m, labelled=arm["labelled"],
                    unsmoothed=f[m]["unsmoothed"], counts=f[m]["counts"], sigma=0.01,
                )
                for m in shots
            ]  # fmt: skip
            prototypes = build_prototypes(labelled, reduction=arm["reduction"])
            steps = args.steps if arm["mode"] == "reference" else None
            preds = optimise_batch(
                [(f[m]["features"], geo[m][1]) for m in tests], prototypes, mode=arm["mode"],
                steps=steps, seed=0,
            )  # fmt: skip
            shape_counts = iou_counts([p.indices for p in preds], gt, raw, THRESHOLDS)
            counts[name].append(shape_counts)
            seconds[name] += time.perf_counter() - t0
            curve = iou_from_counts(shape_counts)
            print(
                f"{category:<9} {name:<18} {time.perf_counter() - t0:7.1f} s; mIoU@0.05 "
                f"{curve[5]:.3f} @0.10 {curve[10]:.3f} ({len(tests)} test shapes)",
                flush=True,
            )
    total = time.perf_counter() - t_start
    table = _table(counts, np.asarray(groups), args.resamples)
    n_views = args.n_azimuth * args.n_polar + 2
    setup = (
        f"{len(args.categories)} categories ({', '.join(args.categories)}) of the embedded "
        f"synthetic dataset ({args.shapes} shapes each, seed 0), {args.shots} shots, "
        f"{len(groups)} test shapes ({args.max_test or 'all'} per category), {n_views} views "
        f"({args.n_azimuth} azimuths x {args.n_polar} polar angles + 2 poles) of 224 px, "
        f"{BACKBONE} {LAYER} in {PRECISION}, "
        + (
            f"reference optimiser ({args.steps} steps) in every arm but the optimiser switch, "
            if args.solver == "reference"
            else "fast optimiser in every arm (`--solver fast`: no optimiser switch), "
        )
        + f"{args.resamples} bootstrap resamples; total {total / 60:.1f} min wall on "
        f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.2f} "
        f"(features {seconds['features'] / 60:.1f} min for "
        f"{computed[0]} of {computed[1]} computed, the rest read from `--root`'s cache; "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items() if k != "features")
        + ")."
    )
    print("\n" + table + "\n\n" + setup)
    if args.out:
        args.out.write_text(_document(table, setup, argv))
        print(f"wrote {args.out}")
    return 0


def _table(counts: dict[str, list[np.ndarray]], groups: np.ndarray, resamples: int) -> str:
    """Markdown: each arm's mean mIoU over categories and its change from ``paper``."""
    at = [int(np.flatnonzero(np.isclose(THRESHOLDS, t))[0]) for t in REPORTED]
    stacked = {name: np.concatenate(c) for name, c in counts.items()}

    def mean_miou(c: np.ndarray) -> np.ndarray:
        return np.mean([iou_from_counts(c[groups == g]) for g in np.unique(groups)], axis=0)

    head = "| arm (from `paper`, switch to ours) | " + " | ".join(
        f"mIoU@{t:.2f} | change (95% CI)" for t in REPORTED
    )
    lines = [head + " |", "|---|" + "---:|---|" * len(REPORTED)]
    base = stacked["paper"]
    for name, c in stacked.items():
        label = LABELS.get(name, SWITCHES.get(name, name))
        miou = mean_miou(c)
        cells = []
        if name == "paper":
            cells = [f"{100 * miou[i]:.1f} | (baseline)" for i in at]
        else:
            delta, low, high = paired_bootstrap_iou(base, c, groups, resamples=resamples)
            cells = [
                f"{100 * miou[i]:.1f} | {100 * delta[i]:+.1f} [{100 * low[i]:+.1f}, "
                f"{100 * high[i]:+.1f}]"
                for i in at
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _document(table: str, setup: str, argv: list[str] | None) -> str:
    command = " ".join(["python benchmarks/ablation.py", *(argv or sys.argv[1:])])
    return (
        "# Ablation: the authors' conventions vs ours, one at a time\n\n"
        "Written by `benchmarks/ablation.py` (do not edit by hand; see "
        "[paper-conventions.md](paper-conventions.md) for what each convention is).\n\n"
        f"Command: `PYTHONPATH=. {command}`\n\n"
        "Mean mIoU (%) over the categories; change in points from the `paper` arm, with a "
        "paired bootstrap 95% interval over test shapes (resampled within each category, "
        "the same shapes and shots for both arms).\n\n"
        f"{table}\n\n{setup}\n"
    )


if __name__ == "__main__":
    sys.exit(main())
