"""Feature-stage speed and accuracy of backbone variants, side by side on the embedded dataset.

For every shape of the embedded synthetic dataset (3 categories x 24 shapes, seed 0; 3 shots
and the 21 later shapes of each category's sample order), every variant runs in turn on the
same shape (interleaved, so load from other processes hits all variants alike): render,
visibility, backbone, back-projection (:func:`bt3d.pipeline.backproject_views`) and geodesic
smoothing, with the shape's geodesics given. Geodesics are timed separately (scipy and the
native engine, also interleaved, bitwise compared). Then each variant is evaluated like
``benchmarks/embedded_accuracy.py``: prototypes from the 3 shots, fast-mode optimisation of
the 21 test shapes, mIoU on raw geodesics.

Columns: s/shape (median and interquartile range of the feature stage), backbone s/shape,
peak RSS (largest resident set sampled every 20 ms while the variant ran, in this process
that also holds the other variants' models), mIoU@0.00/0.05/0.10 per category and mean,
achieved GFLOP/s of the backbone (useful multiply-adds x 2 of the tokens that entered
attention, padding not counted, over backbone seconds), and speed-up over ``f32`` (today's
default: float32, all patches, 62 views, layer block9).

Per (variant, shape) features and timings are cached under ``--root``, so an interrupted run
resumes (cached timings are then from the earlier run).

Usage::

    PYTHONPATH=. python benchmarks/features.py [--variants f32 bf16 bf16-object ...]
        [--max-test 21] [--root /tmp/bt3d-speed] [--out docs/findings/speed-table.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedded_accuracy import THRESHOLDS, _dataset, _geodesics, _long_rows  # noqa: E402

from bt3d.backbones import get_backbone  # noqa: E402
from bt3d.backproject import geodesic_smooth  # noqa: E402
from bt3d.cache import CacheError, load_arrays, save_arrays  # noqa: E402
from bt3d.fewshot import LabelledShape, build_prototypes  # noqa: E402
from bt3d.geodesic import geodesic_matrix  # noqa: E402
from bt3d.io import KeypointNetDataset, class_id_of  # noqa: E402
from bt3d.metrics import iou_curve  # noqa: E402
from bt3d.optimize import optimise_batch  # noqa: E402
from bt3d.pipeline import StageTimer, backproject_views  # noqa: E402
from bt3d.selection import few_shot_split  # noqa: E402
from bt3d.settings import FeatureSettings, load_config  # noqa: E402


@dataclass(frozen=True)
class Variant:
    """One way to compute the features: autocast type, patches, view sphere, int8 linears."""

    precision: str = "float32"
    tokens: str = "all"
    token_margin: int = 0
    background_stride: int = 0
    n_azimuth: int = 12
    n_polar: int = 5
    int8: bool = False

    @property
    def views(self) -> int:
        return self.n_azimuth * self.n_polar + 2

    def settings(self) -> FeatureSettings:
        """The feature settings of this variant (shapes as stored, as the reference)."""
        config = load_config(
            overrides={
                "dataset": {"normalise": False},
                "render": {"n_azimuth": self.n_azimuth, "n_polar": self.n_polar},
                "backbone": {
                    "precision": self.precision,
                    "tokens": self.tokens,
                    "token_margin": self.token_margin,
                    "background_stride": self.background_stride,
                },
            }
        )
        return FeatureSettings.from_config(config)


VIEWS = {62: (12, 5), 42: (8, 5), 26: (8, 3), 20: (6, 3), 12: (5, 2)}
VARIANTS: dict[str, Variant] = {
    "f32": Variant(),
    "bf16": Variant(precision="bfloat16"),
    "int8": Variant(int8=True),
    "f32-object": Variant(tokens="object"),
    "bf16-object": Variant(precision="bfloat16", tokens="object"),
    **{
        f"bf16-object-m{m}": Variant(precision="bfloat16", tokens="object", token_margin=m)
        for m in (1, 2)
    },
    **{
        f"bf16-object-g{s}": Variant(precision="bfloat16", tokens="object", background_stride=s)
        for s in (2, 3, 4)
    },
    "bf16-object-m1-g4": Variant(
        precision="bfloat16", tokens="object", token_margin=1, background_stride=4
    ),
    **{
        f"bf16-{v}v": Variant(precision="bfloat16", n_azimuth=a, n_polar=p)
        for v, (a, p) in VIEWS.items()
        if v != 62
    },
    **{
        f"bf16-object-{v}v": Variant(precision="bfloat16", tokens="object", n_azimuth=a, n_polar=p)
        for v, (a, p) in VIEWS.items()
        if v != 62
    },
}
BASELINE = "f32"
LAYER = "block9"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/bt3d-speed"))
    p.add_argument("--categories", nargs="+", default=["airplane", "chair", "table"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--shots", type=int, default=3)
    p.add_argument("--max-test", type=int, default=None, help="test shapes per category")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="also write the table (markdown)")
    return p.parse_args(argv)


class PeakRss:
    """Largest RSS of this process sampled every ``period`` s inside ``with`` blocks."""

    def __init__(self, period: float = 0.02) -> None:
        self.period, self.peak, self._stop = period, 0, threading.Event()
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.peak = self._proc.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def vit_gflop(tokens_per_view: np.ndarray, blocks: int = 10, dim: int = 384) -> float:
    """Useful GFLOP of ViT-S/14 blocks 0..blocks-1 over views with the given token counts.

    Per block and view with T tokens: qkv 3D^2 T, proj D^2 T, MLP 8 D^2 T, attention
    scores and values 2 T^2 D multiply-adds; x2 for FLOP. Patch embedding: 588 D per patch.
    """
    t = np.asarray(tokens_per_view, dtype=np.float64)
    per_block = 12 * dim**2 * t + 2 * t**2 * dim
    return float((2 * (blocks * per_block + 588 * dim * (t - 1))).sum() / 1e9)


def _tokens_per_view(keep: np.ndarray | None, views: int, grid: int = 16) -> np.ndarray:
    if keep is None:
        return np.full(views, 1 + grid * grid)
    return 1 + keep.reshape(views, -1).sum(axis=1)


def _run_variant(name, variant, backbone, dataset, category, model_id, normalised, cache):
    """Features of one shape (cached) with timings: returns (features, record dict)."""
    path = cache / "features" / name / category / f"{model_id}.npz"
    expected = {"model_id": model_id, "variant": name, "layer": LAYER}
    try:
        arrays, header = load_arrays(path, expected)
        return arrays["features"], header["record"]
    except (CacheError, KeyError):
        pass
    mesh = dataset.load_mesh(category, model_id)
    points = dataset.load_points(category, model_id)
    timer = StageTimer()
    keep_seen: list[np.ndarray | None] = []
    import bt3d.pipeline as pipeline

    original = pipeline.token_mask

    def recording_mask(*args, **kwargs):
        keep = original(*args, **kwargs)
        keep_seen.append(keep)
        return keep

    pipeline.token_mask = recording_mask
    try:
        with PeakRss() as rss:
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            unsmoothed, counts = backproject_views(
                mesh, points, backbone, variant.settings(), timer=timer
            )
            with timer.stage("smoothing"):
                features = geodesic_smooth(unsmoothed, counts, normalised, sigma=0.01)
            seconds = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
    finally:
        pipeline.token_mask = original
    tokens = _tokens_per_view(keep_seen[0], variant.views)
    record = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "backbone_seconds": timer.totals()["backbone"],
        "stages": timer.totals(),
        "peak_rss_mb": rss.peak / 2**20,
        "gflop": vit_gflop(tokens),
        "token_fraction": float(tokens.sum() / (variant.views * 257)),
    }
    save_arrays(path, {"features": features, "counts": counts}, {**expected, "record": record})
    return features, record


def _time_geodesics(dataset, category, model_id, cache) -> dict:
    """scipy vs native engine on one cloud, interleaved; checks they agree bit for bit."""
    path = cache / "geodesic-timing" / category / f"{model_id}.npz"
    try:
        return load_arrays(path, {"model_id": model_id})[1]["record"]
    except (CacheError, KeyError):
        pass
    points = dataset.load_points(category, model_id)
    record = {}
    results = {}
    for engine, threads in (("scipy", 1), ("native", 1), ("native", 2)):
        t0 = time.perf_counter()
        results[(engine, threads)] = geodesic_matrix(points, engine=engine, threads=threads)
        record[f"{engine}{threads}"] = time.perf_counter() - t0
    oracle = results[("scipy", 1)].view(np.uint64)
    record["bitwise_equal"] = all(
        np.array_equal(r.view(np.uint64), oracle) for r in results.values()
    )
    save_arrays(path, {"done": np.ones(1)}, {"model_id": model_id, "record": record})
    return record


def _backbones(names: list[str]) -> dict[str, torch.nn.Module]:
    base = get_backbone("dinov2_vits14_offline", "cpu", layer=LAYER)
    out = {}
    for name in names:
        if VARIANTS[name].int8:
            quantised = get_backbone("dinov2_vits14_offline", "cpu", layer=LAYER)
            out[name] = torch.ao.quantization.quantize_dynamic(
                quantised, {torch.nn.Linear}, dtype=torch.qint8
            )
        else:
            out[name] = base
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    data = _dataset(args.root, args.categories, 24)
    cache = args.root / "cache"
    dataset = KeypointNetDataset(data)
    order = dataset.sample_order()
    backbones = _backbones(args.variants)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, variants {args.variants}",
        flush=True,
    )
    rows, records, geodesic_rows = [], [], []
    for category in args.categories:
        annotations = dataset.annotations(category)
        shots, tests = few_shot_split(
            order, class_id_of(category), args.shots, max_test=args.max_test
        )
        ids = shots + tests
        geo = {m: _geodesics(cache, dataset, category, m) for m in ids}
        feats: dict[str, dict[str, np.ndarray]] = {name: {} for name in args.variants}
        for model_id in ids:
            geodesic_rows.append(_time_geodesics(dataset, category, model_id, cache))
            line = []
            for name in args.variants:
                f, record = _run_variant(
                    name, VARIANTS[name], backbones[name], dataset, category, model_id,
                    geo[model_id][1], cache,
                )  # fmt: skip
                feats[name][model_id] = f
                records.append({"variant": name, "category": category, **record})
                line.append(f"{name} {record['seconds']:.1f}")
            print(f"{category}/{model_id[:10]}: " + ", ".join(line) + " s", flush=True)
        gt = [annotations[m].point_indices for m in tests]
        test_raw = [geo[m][0] for m in tests]
        for name in args.variants:
            prototypes = build_prototypes(
                [
                    LabelledShape(
                        feats[name][m],
                        geo[m][1],
                        annotations[m].semantic_ids,
                        annotations[m].point_indices,
                        m,
                    )
                    for m in shots
                ]
            )
            preds = optimise_batch(
                [(feats[name][m], geo[m][1]) for m in tests], prototypes, mode="fast"
            )
            curve = iou_curve([p.indices for p in preds], gt, test_raw, THRESHOLDS)
            rows += _long_rows(category, name, curve)
    table = summary(pd.DataFrame(records), pd.DataFrame(rows), args.variants)
    text = render_table(table, args.categories)
    geo_text = geodesic_summary(pd.DataFrame(geodesic_rows))
    print("\n" + text + "\n\n" + geo_text)
    print(
        f"\n{len(args.categories)} categories, {args.shots} shots, test shapes per category: "
        f"{args.max_test or 'all'}; total {time.perf_counter() - t_start:.0f} s on "
        f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.2f}"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n\n" + geo_text + "\n")
    return 0


def summary(records: pd.DataFrame, miou: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One row per variant: timing, memory, throughput and mIoU columns."""
    out = []
    for name in order:
        r = records[records.variant == name]
        m = miou[miou.method == name]
        row = {
            "variant": name,
            "s_median": r.seconds.median(),
            "s_q25": r.seconds.quantile(0.25),
            "s_q75": r.seconds.quantile(0.75),
            "cpu_median": r.cpu_seconds.median(),
            "backbone_median": r.backbone_seconds.median(),
            "peak_rss_mb": r.peak_rss_mb.max(),
            "gflops": r.gflop.sum() / r.backbone_seconds.sum(),
            "tokens": r.token_fraction.mean(),
            "shapes": len(r),
        }
        for t in (0.0, 0.05, 0.1):
            at = m[np.isclose(m.threshold, t)]
            for category, value in zip(at.category, at.value, strict=True):
                row[f"{category}@{t:.2f}"] = value
            row[f"mean@{t:.2f}"] = at.value.mean()
        out.append(row)
    table = pd.DataFrame(out).set_index("variant")
    if BASELINE in table.index:
        table["speedup"] = table.loc[BASELINE, "s_median"] / table.s_median
    return table


def render_table(table: pd.DataFrame, categories: list[str]) -> str:
    """Markdown: speed columns, then mIoU mean and per category at 0.00/0.05/0.10."""
    head = ["variant", "s/shape median [IQR]", "backbone s", "CPU s", "peak RSS MiB",
            "GFLOP/s", "tokens", "x f32", "mean mIoU@0/0.05/0.10"]  # fmt: skip
    head += [f"{c} @0/0.05/0.10" for c in categories]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in table.iterrows():
        cells = [
            name,
            f"{r.s_median:.2f} [{r.s_q25:.2f}-{r.s_q75:.2f}]",
            f"{r.backbone_median:.2f}",
            f"{r.cpu_median:.2f}",
            f"{r.peak_rss_mb:.0f}",
            f"{r.gflops:.0f}",
            f"{r.tokens:.0%}",
            f"{r.get('speedup', float('nan')):.2f}",
            "/".join(f"{100 * r[f'mean@{t:.2f}']:.1f}" for t in (0.0, 0.05, 0.1)),
        ]
        cells += [
            "/".join(f"{100 * r.get(f'{c}@{t:.2f}', float('nan')):.1f}" for t in (0.0, 0.05, 0.1))
            for c in categories
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def geodesic_summary(g: pd.DataFrame) -> str:
    """Median seconds per shape of each geodesic engine and whether all were bit-equal."""
    if g.empty:
        return ""
    cols = [c for c in ("scipy1", "native1", "native2") if c in g]
    med = {c: g[c].median() for c in cols}
    parts = [f"{c} {med[c]:.3f} s ({med['scipy1'] / med[c]:.1f}x)" for c in cols]
    return (
        f"geodesics, median per shape over {len(g)} shapes: " + ", ".join(parts)
        + f"; bitwise equal to scipy on every shape: {bool(g.bitwise_equal.all())}"
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
