"""Per-stage wall time and peak memory of the bt3d pipeline, per shape.

Generates a small embedded synthetic dataset in a temporary folder, then for each backbone
and each shape runs: cameras, render, backbone, visibility+projection, back-projection,
geodesics, smoothing (:func:`bt3d.pipeline.extract_shape_features` with a
:class:`bt3d.pipeline.StageTimer`), then the keypoint optimisation (prototypes from the
category's first shape) and the mIoU evaluation of each remaining shape. Prints two tables:
seconds per stage and memory per stage.

Memory columns (see StageTimer): ``rss+`` = growth of the process's peak RSS during the stage
(MiB; 0 when the stage fits in memory already used before), ``py`` = tracemalloc peak above
the stage's start (MiB; numpy yes, torch CPU tensors no; only with --trace-python, which
slows Python-heavy stages).

Usage::

    PYTHONPATH=. python benchmarks/stages.py [--shapes 3]
        [--backbones dinov2_vits14_offline classical] [--categories airplane chair]
        [--trace-python] [--threads 2] [--settings default float32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bt3d.backbones import get_backbone
from bt3d.fewshot import LabelledShape, build_prototypes
from bt3d.io import KeypointNetDataset, class_id_of
from bt3d.metrics import iou_curve
from bt3d.optimize import optimise_keypoints
from bt3d.pipeline import STAGES, StageRecord, StageTimer, extract_shape_features, shape_geodesic
from bt3d.settings import FeatureSettings, GeodesicSettings, load_config
from bt3d.synthetic import generate_dataset

ALL_STAGES = (*STAGES, "optimisation", "evaluation")
# shapes as stored; "default": config.yaml's backbone (bfloat16, object patches + margin);
# "float32": the reference computation (float32, every patch)
SETTINGS = {
    "default": load_config(overrides={"dataset": {"normalise": False}}),
    "float32": load_config(
        overrides={
            "dataset": {"normalise": False},
            "backbone": {"precision": "float32", "tokens": "all"},
        }
    ),
}
THRESHOLDS = np.round(np.arange(11) * 0.01, 2)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", type=int, default=3, help="shapes per category (>= 2)")
    p.add_argument("--categories", nargs="+", default=["airplane", "chair"])
    p.add_argument("--backbones", nargs="+", default=["dinov2_vits14_offline", "classical"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--trace-python", action="store_true")
    p.add_argument("--mode", default="fast", choices=("fast", "reference"))
    p.add_argument("--settings", nargs="+", default=["default"], choices=list(SETTINGS))
    return p.parse_args(argv)


def _run_category(
    dataset: KeypointNetDataset, category: str, backbone, config: dict, args: argparse.Namespace
) -> list[tuple[str, list[StageRecord]]]:
    """Feature stages for every shape; optimisation and evaluation for all but the first."""
    annotations = dataset.annotations(category)
    model_ids = sorted(annotations)[: args.shapes]
    rows, shapes = [], {}
    for model_id in model_ids:
        timer = StageTimer(trace_python=args.trace_python)
        mesh = dataset.load_mesh(category, model_id)
        points = dataset.load_points(category, model_id)
        with timer.stage("geodesics"):
            raw = shape_geodesic(
                mesh, points, GeodesicSettings.from_config(config), model_id,
                torch.get_num_threads(),
            )  # fmt: skip
        settings = FeatureSettings.from_config(config)
        shapes[model_id] = extract_shape_features(
            mesh, points, backbone, settings, raw, timer=timer
        )
        rows.append((model_id, timer))
    shot = annotations[model_ids[0]]
    prototypes = build_prototypes(
        [
            LabelledShape(
                shapes[model_ids[0]].features,
                shapes[model_ids[0]].geodesic_normalised,
                shot.semantic_ids,
                shot.point_indices,
                model_ids[0],
            )
        ]
    )
    for model_id, timer in rows[1:]:
        shape = shapes[model_id]
        with timer.stage("optimisation"):
            pred = optimise_keypoints(
                shape.features, shape.geodesic_normalised, prototypes, mode=args.mode
            )
        with timer.stage("evaluation"):
            iou_curve(
                [pred.indices],
                [annotations[model_id].point_indices],
                [shape.geodesic],
                THRESHOLDS,
            )
    return [(f"{category}/{m[:10]}", t.records) for m, t in rows]


def _table(rows: list[tuple[str, str, list[StageRecord]]], field: str, fmt: str) -> str:
    head = f"{'backbone':<22} {'shape':<20} " + " ".join(f"{s[:11]:>11}" for s in ALL_STAGES)
    lines = [head, "-" * len(head)]
    for backbone, shape, records in rows:
        by_stage = {r.stage: getattr(r, field) for r in records}
        cells = [
            fmt.format(by_stage[s]) if by_stage.get(s) is not None else "-" for s in ALL_STAGES
        ]
        lines.append(f"{backbone:<22} {shape:<20} " + " ".join(f"{c:>11}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.shapes < 2:
        raise SystemExit("--shapes must be >= 2 (one labelled shape, one or more test shapes)")
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"categories {args.categories}, {args.shapes} shapes each, optimiser mode {args.mode}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bt3d-bench-") as tmp:
        t0 = time.perf_counter()
        root = generate_dataset(
            Path(tmp), categories=tuple(args.categories), shapes_per_category=args.shapes
        )
        print(f"synthetic dataset: {time.perf_counter() - t0:.1f} s")
        dataset = KeypointNetDataset(root)
        for name in args.backbones:
            t0 = time.perf_counter()
            backbone = get_backbone(name, "cpu")
            print(f"{name}: loaded in {time.perf_counter() - t0:.1f} s")
            for setting in args.settings:
                for category in args.categories:
                    class_id_of(category)
                    runs = _run_category(dataset, category, backbone, SETTINGS[setting], args)
                    rows += [(f"{name[:14]}/{setting}", shape, rec) for shape, rec in runs]
    print("\nwall time per stage [s]")
    print(_table(rows, "seconds", "{:.2f}"))
    print("\npeak RSS growth per stage [MiB] (0 = fitted in memory already used)")
    print(_table(rows, "rss_growth_mb", "{:.0f}"))
    if args.trace_python:
        print("\ntracemalloc peak per stage [MiB] (numpy; not torch CPU tensors)")
        print(_table(rows, "python_peak_mb", "{:.0f}"))
    if torch.cuda.is_available():
        print("\nCUDA max_memory_allocated per stage [MiB]")
        print(_table(rows, "cuda_peak_mb", "{:.0f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
