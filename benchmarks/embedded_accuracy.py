"""End-to-end accuracy on the embedded synthetic dataset: mIoU@0.00..0.10 per category/method.

Steps (all through the bt3d modules, paper protocol):

1. ``bt3d.synthetic.generate_dataset`` (3 categories x 24 shapes, seed 0) into ``--root``,
   unless already there.
2. Per shape: raw geodesics (20-NN graph, cached as float16 in ``--cache``) and back-projected
   features (62 views by default, 224 px, nearest patch, sigma 0.01), cached per backbone.
   ``dinov2_vits14_offline`` is run once with layer ``blocks9-11``; since every layer is
   normalised by the final norm separately, ``block9`` and ``last_norm`` are the first and
   last 384 channels of that map, and back-projection and smoothing act per channel, so the
   three layers come from one forward pass.
3. Per category: prototypes from the first ``--shots`` shapes of the sample order
   (``bt3d.selection.few_shot_split``, ``bt3d.fewshot.build_prototypes``, mean reduction), keypoints
   of every test shape by ``bt3d.optimize.optimise_batch`` (fast mode), and a random-point
   baseline (as many distinct random points as prototypes, seed 0).
4. ``bt3d.metrics.iou_curve`` on raw geodesics, printed per category and method.

Usage::

    PYTHONPATH=. python benchmarks/embedded_accuracy.py [--root /tmp/bt3d-embedded] [--shapes 24]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bt3d.backbones import get_backbone
from bt3d.backproject import geodesic_smooth
from bt3d.cache import CacheError, load_arrays, load_geodesics, save_arrays, save_geodesics
from bt3d.fewshot import LabelledShape, build_prototypes
from bt3d.io import KeypointNetDataset, class_id_of
from bt3d.metrics import iou_curve, random_baseline_indices
from bt3d.optimize import optimise_batch
from bt3d.pipeline import backproject_views, shape_geodesic
from bt3d.selection import few_shot_split
from bt3d.settings import FeatureSettings, GeodesicSettings, load_config
from bt3d.synthetic import generate_dataset

THRESHOLDS = np.round(np.arange(11) * 0.01, 2)
# method name -> (backbone, layer run, channel slice of its features or None = all)
VIT_DIM = 384
METHODS = {
    "dinov2_s14/last_norm": ("dinov2_vits14_offline", "blocks9-11", slice(2 * VIT_DIM, None)),
    "dinov2_s14/block9": ("dinov2_vits14_offline", "blocks9-11", slice(0, VIT_DIM)),
    "dinov2_s14/blocks9-11": ("dinov2_vits14_offline", "blocks9-11", None),
    "classical": ("classical", None, None),
}

# the reference computation: float32, shapes as stored (the synthetic shapes are at unit size)
REFERENCE = load_config(
    overrides={"dataset": {"normalise": False}, "backbone": {"precision": "float32"}}
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/bt3d-embedded"))
    p.add_argument("--categories", nargs="+", default=["airplane", "chair", "table"])
    p.add_argument("--shapes", type=int, default=24)
    p.add_argument("--shots", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--n-azimuth", type=int, default=12)
    p.add_argument("--n-polar", type=int, default=5)
    p.add_argument("--max-test", type=int, default=None, help="test shapes per category")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--csv", type=Path, default=None, help="also write the long table here")
    return p.parse_args(argv)


def _dataset(root: Path, categories: list[str], shapes: int) -> Path:
    data = root / f"data-{shapes}"
    if not (data / "benchmark_indices.csv").is_file():
        t0 = time.perf_counter()
        generate_dataset(data, categories=tuple(categories), shapes_per_category=shapes, seed=0)
        print(f"generated {data} in {time.perf_counter() - t0:.0f} s", flush=True)
    return data


def _geodesics(cache: Path, dataset: KeypointNetDataset, category: str, model_id: str):
    path = cache / "geodesics" / category / f"{model_id}.npz"
    expected = {"model_id": model_id, "knn": 20, "unreachable": "max"}
    try:
        raw, normalised, _ = load_geodesics(path, expected)
    except CacheError:
        points = dataset.load_points(category, model_id)
        mesh = dataset.load_mesh(category, model_id)
        raw = shape_geodesic(mesh, points, GeodesicSettings.from_config(REFERENCE), model_id, 2)
        save_geodesics(path, raw, expected)
        raw, normalised, _ = load_geodesics(path, expected)
    return raw, normalised


def _features(
    cache: Path, dataset, category, model_id, backbone_name, layer, get, normalised, views
):
    """(N, C) smoothed float32 features, cached per backbone+layer+views+shape."""
    n_azimuth, n_polar = views
    name = f"{backbone_name}-{layer}-{n_azimuth}x{n_polar}"
    path = cache / "features" / name / category / f"{model_id}.npz"
    expected = {"model_id": model_id, "backbone": backbone_name, "layer": layer,
                "n_azimuth": n_azimuth, "n_polar": n_polar}  # fmt: skip
    try:
        arrays, _ = load_arrays(path, expected)
        return arrays["features"]
    except CacheError:
        pass
    mesh = dataset.load_mesh(category, model_id)
    points = dataset.load_points(category, model_id)
    settings = FeatureSettings.from_config(REFERENCE)
    settings = replace(
        settings, render=replace(settings.render, n_azimuth=n_azimuth, n_polar=n_polar)
    )
    unsmoothed, counts = backproject_views(mesh, points, get(), settings)
    features = geodesic_smooth(unsmoothed, counts, normalised, sigma=0.01)
    save_arrays(path, {"features": features, "counts": counts}, expected)
    return features


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    data = _dataset(args.root, args.categories, args.shapes)
    cache = args.root / "cache"
    dataset = KeypointNetDataset(data)
    order = dataset.sample_order()
    backbones: dict[tuple[str, str | None], torch.nn.Module] = {}

    def getter(name: str, layer: str | None):
        def get() -> torch.nn.Module:
            if (name, layer) not in backbones:
                backbones[(name, layer)] = get_backbone(name, "cpu", layer=layer)
            return backbones[(name, layer)]

        return get

    rows = []
    for category in args.categories:
        annotations = dataset.annotations(category)
        shots, tests = few_shot_split(
            order, class_id_of(category), args.shots, max_test=args.max_test
        )
        ids = shots + tests
        geo = {m: _geodesics(cache, dataset, category, m) for m in ids}
        gt = [annotations[m].point_indices for m in tests]
        test_raw = [geo[m][0] for m in tests]
        n_keypoints = 0
        for method in args.methods:
            backbone_name, layer, channels = METHODS[method]
            t0 = time.perf_counter()
            feats = {}
            for m in ids:
                f = _features(
                    cache, dataset, category, m, backbone_name, layer,
                    getter(backbone_name, layer), geo[m][1], (args.n_azimuth, args.n_polar),
                )  # fmt: skip
                feats[m] = f if channels is None else f[:, channels]
            t_feat = time.perf_counter() - t0
            prototypes = build_prototypes(
                [
                    LabelledShape(
                        feats[m],
                        geo[m][1],
                        annotations[m].semantic_ids,
                        annotations[m].point_indices,
                        m,
                    )
                    for m in shots
                ]
            )
            n_keypoints = prototypes.num_keypoints
            t0 = time.perf_counter()
            preds = optimise_batch([(feats[m], geo[m][1]) for m in tests], prototypes, mode="fast")
            t_opt = time.perf_counter() - t0
            curve = iou_curve([p.indices for p in preds], gt, test_raw, THRESHOLDS)
            rows += _long_rows(category, method, curve)
            print(
                f"{category:<9} {method:<22} features {t_feat:6.1f} s, "
                f"optimisation {t_opt:5.1f} s ({len(tests)} test shapes, K={n_keypoints}); "
                f"mIoU@0.00..0.10 " + " ".join(f"{v:.3f}" for v in curve),
                flush=True,
            )
        rng = np.random.default_rng(0)
        random_pred = [random_baseline_indices(len(g[0]), n_keypoints, rng) for g in
                       (geo[m] for m in tests)]  # fmt: skip
        rows += _long_rows(category, "random", iou_curve(random_pred, gt, test_raw, THRESHOLDS))

    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    _print_table(table)
    views = args.n_azimuth * args.n_polar + 2
    print(
        f"\n{views} views ({args.n_azimuth} azimuths x {args.n_polar} polar angles + 2 poles), "
        f"{args.shots} shots, test shapes per category: {args.max_test or 'all'}; "
        f"total {time.perf_counter() - t_start:.0f} s on {os.cpu_count()} CPUs, load average "
        f"at the end {os.getloadavg()[0]:.2f}"
    )
    return 0


def _long_rows(category: str, method: str, curve: np.ndarray) -> list[dict]:
    return [
        {"category": category, "method": method, "threshold": float(t), "value": float(v),
         "metric_name": "mIoU"}
        for t, v in zip(THRESHOLDS, curve, strict=True)
    ]  # fmt: skip


def _print_table(table: pd.DataFrame) -> None:
    wide = table.pivot_table(
        index=["category", "method"], columns="threshold", values="value", sort=False
    )
    mean = table.groupby(["method", "threshold"], sort=False)["value"].mean().unstack()
    mean.index = pd.MultiIndex.from_product([["mean"], mean.index])
    wide = pd.concat([wide, mean])
    head = f"{'category':<9} {'method':<22} " + " ".join(f"{t:>5.2f}" for t in THRESHOLDS)
    print("\nmIoU at geodesic threshold (embedded synthetic dataset, "
          "3 shots, test = later shapes of the sample order)")  # fmt: skip
    print(head)
    print("-" * len(head))
    for (category, method), values in wide.iterrows():
        print(f"{category:<9} {method:<22} " + " ".join(f"{v:5.3f}" for v in values))


if __name__ == "__main__":
    sys.exit(main())
