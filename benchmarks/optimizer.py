"""Speed and accuracy of the keypoint optimiser: reference (5000 Adam steps) vs fast mode.

Test problems without the full pipeline: the real KeypointNet chair point cloud in
``../shared/data/keypointnet-sample`` (2048 points, 10 keypoints, left/right symmetric pairs)
is deformed at random (per-axis scale, bend, jitter; point correspondences kept, so the
annotated point indices stay the ground truth). Each copy gets synthetic features: random
Fourier features of the mirrored position (|x|, y, z), so that left/right partners look
almost alike, plus a weak side-dependent component, per-point noise, and geodesic smoothing
as in back-projection. Three copies are "labelled" (prototypes with reduction="mean"), the
others are test shapes. Accuracy: geodesic error (raw, un-normalised distances) between each
predicted keypoint and the true point of the same semantic id, PCK at 0.01..0.10, and the
KeypointNet IoU (ALGORITHM §5) at the same thresholds.

Usage:
    python benchmarks/optimizer.py [--test-shapes 6] [--reference-shapes 3] [--seeds 0 1]
        [--channels 384 1536] [--candidates 64 [128 ...]] [--refine-steps 0]
        [--reference-cache ref.json]

Reference predictions (~30-60 s per shape) can be cached with ``--reference-cache``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from optimizer_research import optimise_research

from bt3d.fewshot import LabelledShape, build_prototypes
from bt3d.geodesic import geodesic_matrix, normalise_geodesic
from bt3d.io import read_annotations, read_pcd
from bt3d.optimize import optimise_keypoints

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "keypointnet-sample"
CHAIR = ("03001627", "88382b877be91b2a572f8e1c1caad99e")
THRESHOLDS = np.round(np.arange(0.01, 0.1001, 0.01), 2)


def load_chair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (2048, 3), semantic_ids (K,), point_indices (K,)) of the sample chair."""
    points, _ = read_pcd(SAMPLE / "pcds" / CHAIR[0] / f"{CHAIR[1]}.pcd")
    (ann,) = [
        a for a in read_annotations(SAMPLE / "annotations" / "chair.json") if a.model_id == CHAIR[1]
    ]
    return points.astype(np.float64), ann.semantic_ids, ann.point_indices


def deform(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random smooth deformation, re-normalised to a unit bounding-box diagonal. (N, 3)"""
    p = points - points.mean(axis=0)
    p = p * rng.uniform(0.85, 1.15, size=3)
    p[:, 1] += rng.uniform(-0.4, 0.4) * p[:, 2] ** 2 + rng.uniform(-0.3, 0.3) * p[:, 0] ** 2
    p[:, 2] += rng.uniform(-0.2, 0.2) * p[:, 1]
    p = p + rng.normal(0.0, 0.004, size=p.shape)
    return p / np.linalg.norm(p.max(axis=0) - p.min(axis=0))


class FeatureModel:
    """Synthetic point features of dimension C, fixed by ``seed`` (the "backbone")."""

    def __init__(
        self,
        channels: int,
        seed: int = 0,
        length_scale: float = 0.12,
        asymmetry: float = 0.15,
        noise: float = 0.5,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.w = rng.normal(0.0, 1.0 / length_scale, size=(3, channels))
        self.b = rng.uniform(0.0, 2 * np.pi, size=channels)
        self.side = rng.normal(0.0, 1.0, size=channels)
        self.asymmetry, self.noise = asymmetry, noise

    def __call__(
        self, points: np.ndarray, geodesic_normalised: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        q = points - (points.max(axis=0) + points.min(axis=0)) / 2
        mirrored = np.column_stack([np.abs(q[:, 0]), q[:, 1], q[:, 2]])
        f = np.sqrt(2.0) * np.cos(mirrored @ self.w + self.b)
        f += self.asymmetry * np.tanh(q[:, :1] / 0.05) * self.side
        f += rng.normal(0.0, self.noise, size=f.shape)
        weights = np.exp(-(geodesic_normalised**2) / (2 * 0.02**2))
        return (weights @ f / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def make_problems(channels: int, n_labelled: int, n_test: int, seed: int):
    """Labelled shapes and test shapes (features, D_norm, D_raw) of one synthetic category."""
    points, ids, idx = load_chair()
    rng = np.random.default_rng(1000 + seed)
    model = FeatureModel(channels, seed=seed)
    shapes = []
    for _ in range(n_labelled + n_test):
        p = deform(points, rng)
        raw = geodesic_matrix(p)
        norm = normalise_geodesic(raw)
        shapes.append((model(p, norm, rng), norm, raw))
    labelled = [
        LabelledShape(f, d, ids, idx, model_id=f"shot{i}")
        for i, (f, d, _) in enumerate(shapes[:n_labelled])
    ]
    return build_prototypes(labelled), shapes[n_labelled:], ids, idx


def accuracy(preds, tests, gt_idx) -> dict[str, np.ndarray | float]:
    """Mean geodesic error, PCK(t) and KeypointNet IoU(t) over the test shapes."""
    errors, fp, fn, npos = [], np.zeros(len(THRESHOLDS)), np.zeros(len(THRESHOLDS)), 0
    for pred, (_, _, raw) in zip(preds, tests, strict=True):
        errors.append(raw[pred.indices, gt_idx])
        cross = raw[np.ix_(pred.indices, gt_idx)]  # (predictions, ground truth)
        npos += len(gt_idx)
        for t, thr in enumerate(THRESHOLDS):
            fp[t] += np.sum(cross.min(axis=1) > thr)
            fn[t] += np.sum(cross.min(axis=0) > thr)
    err = np.concatenate(errors)
    return {
        "mean_error": float(err.mean()),
        "pck": np.array([(err <= t).mean() for t in THRESHOLDS]),
        "iou": (npos - fn) / (npos + fp),
    }


class Cached:
    """A reference prediction read from the cache (only what :func:`accuracy` reads)."""

    def __init__(self, indices: np.ndarray, final_loss: float) -> None:
        self.indices, self.final_loss = indices, final_loss


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def fmt(curve: np.ndarray) -> str:
    return " ".join(f"{v:.2f}" for v in curve)


def run(
    channels: int,
    seeds: list[int],
    n_test: int,
    n_ref: int,
    steps_ref: int,
    fast_opts,
    cache_path: Path | None = None,
) -> None:
    print(
        f"\n== C={channels}: {len(seeds)} seeds x {n_test} test shapes "
        f"(reference on the first {n_ref} of each seed, {steps_ref} steps) =="
    )
    rows = {"reference": [], "fast(same shapes)": [], "fast(all)": []}
    t_ref, t_fast, t_batch, n_batch, steps_fast = [], [], 0.0, 0, []
    c_ref, c_fast = [], []
    for seed in seeds:
        protos, tests, _, gt_idx = make_problems(channels, 3, n_test, seed)
        optimise_research([tests[0][:2]], protos, **fast_opts)  # warm-up
        ref, fast = [], []
        for i, (f, d, _) in enumerate(tests):
            if i < n_ref:
                cache = json.loads(cache_path.read_text()) if cache_path else {}
                key = f"{channels}/{seed}/{i}/{n_test}/{steps_ref}"
                if key not in cache:
                    cpu = time.process_time()
                    p, t = timed(
                        optimise_keypoints, f, d, protos, mode="reference", steps=steps_ref,
                        seed=seed,
                    )  # fmt: skip
                    print(f"    reference shape {i}: {t:.1f} s", flush=True)
                    cache[key] = {
                        "indices": p.indices.tolist(),
                        "loss": p.final_loss,
                        "wall": t,
                        "cpu": time.process_time() - cpu,
                    }
                    if cache_path:
                        cache_path.write_text(json.dumps(cache))
                ref.append(Cached(np.asarray(cache[key]["indices"]), cache[key]["loss"]))
                t_ref.append(cache[key]["wall"])
                c_ref.append(cache[key]["cpu"])
            cpu = time.process_time()
            (p,), t = timed(optimise_research, [(f, d)], protos, seed=seed, **fast_opts)
            c_fast.append(time.process_time() - cpu)
            fast.append(p)
            t_fast.append(t)
            steps_fast.append(p.steps_run)
        problems = [(f, d) for f, d, _ in tests]
        batch, t = timed(optimise_research, problems, protos, seed=seed, **fast_opts)
        t_batch += t
        n_batch += len(tests)
        same = sum(
            int(np.array_equal(a.indices, b.indices)) for a, b in zip(batch, fast, strict=True)
        )
        print(f"  seed {seed}: batched == single predictions on {same}/{len(tests)} shapes")
        rows["reference"].append((ref, tests[:n_ref], gt_idx))
        rows["fast(same shapes)"].append((fast[:n_ref], tests[:n_ref], gt_idx))
        rows["fast(all)"].append((fast, tests, gt_idx))
    for what, r, f in (("wall", t_ref, t_fast), ("cpu", c_ref, c_fast)):
        line = f"  {what} time / shape (median): fast {np.median(f) * 1000:.1f} ms (n={len(f)}"
        line += f", steps {np.mean(steps_fast):.0f} mean, {max(steps_fast)} max)"
        if r:
            line += f"; reference {np.median(r):.2f} s (n={len(r)}), ratio "
            line += f"{np.median(r) / np.median(f):.0f}x"
        print(line)
    print(
        f"  batched fast throughput: {n_batch / t_batch:.1f} shapes/s "
        f"({t_batch / n_batch * 1000:.1f} ms/shape)"
    )
    print(f"  thresholds          {fmt(THRESHOLDS)}")
    for name, parts in rows.items():
        preds = [p for ps, _, _ in parts for p in ps]
        if not preds:  # --reference-shapes 0
            continue
        tests = [t for _, ts, _ in parts for t in ts]
        gt = parts[0][2]
        acc = accuracy(preds, tests, gt)
        loss = np.mean([p.final_loss for p in preds])
        print(f"  {name:18s} err {acc['mean_error']:.4f}  PCK {fmt(acc['pck'])}")
        print(f"  {'':18s}             IoU {fmt(acc['iou'])}  mean final loss {loss:.3f}")
    ref_loss = [p.final_loss for ps, _, _ in rows["reference"] for p in ps]
    same_loss = [p.final_loss for ps, _, _ in rows["fast(same shapes)"] for p in ps]
    if ref_loss:
        lower = sum(a < b for a, b in zip(same_loss, ref_loss, strict=True))
        print(f"  fast reaches a lower loss than the reference on {lower}/{len(ref_loss)} shapes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[384, 1536])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--test-shapes", type=int, default=6)
    parser.add_argument("--reference-shapes", type=int, default=2)
    parser.add_argument("--reference-steps", type=int, default=5000)
    parser.add_argument(
        "--candidates", type=int, nargs="+", default=[64], help="several: keep the lowest loss"
    )
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--init", default="similarity")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--refine-steps", type=int, default=0)
    parser.add_argument("--reference-cache", type=Path, default=None)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: timings comparable)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not SAMPLE.is_dir():
        raise SystemExit(f"{SAMPLE} not present: the benchmark needs the KeypointNet sample chair")
    fast_opts = dict(
        candidates=tuple(None if m <= 0 else m for m in args.candidates),
        temperature=args.temperature,
        init=args.init,
        tol=args.tol,
        steps=args.max_steps,
        lr=args.lr,
        refine_steps=args.refine_steps,
    )
    print(
        f"fast settings: {fast_opts}; torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    for c in args.channels:
        run(
            c, args.seeds, args.test_shapes, args.reference_shapes, args.reference_steps,
            fast_opts, args.reference_cache,
        )  # fmt: skip


if __name__ == "__main__":
    main()
