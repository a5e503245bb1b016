"""Geodesic smoothing (one matmul vs the reference per-point loop) and geodesic_matrix time.

For N = 2048 points (KeypointNet's cloud size) and feature widths C = 384 (ViT-S/14) and
1536 (ViT-g/14), times :func:`bt3d.backproject.geodesic_smooth` against
:func:`bt3d.backproject.reference_geodesic_smooth_loop`, and times
:func:`bt3d.geodesic.geodesic_matrix` on the same cloud. The loop runs over a subset of the
source points (``--loop-points``) and its full time is extrapolated linearly (every source
point costs the same outer product); the output says when it does. ``--loop-points 0`` runs
the whole loop.

The cloud is the real KeypointNet chair in ``../shared/data`` when present, else 2048 random
points on a unit sphere (the output says which). Features are random, a few points unseen.

Usage::

    python benchmarks/smoothing.py [--threads 2] [--repeats 3] [--loop-points 256]
        [--channels 384 1536] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from bt3d.backproject import geodesic_smooth, reference_geodesic_smooth_loop
from bt3d.device import resolve_device
from bt3d.geodesic import geodesic_matrix, normalise_geodesic

REPO = Path(__file__).resolve().parents[1]
CHAIR = (
    REPO.parent
    / "shared/data/keypointnet-sample/pcds/03001627/88382b877be91b2a572f8e1c1caad99e.pcd"
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--loop-points", type=int, default=256, help="0 = run the full loop")
    p.add_argument("--channels", type=int, nargs="+", default=[384, 1536])
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def _cloud() -> tuple[np.ndarray, str]:
    if CHAIR.is_file():
        from bt3d.io import read_pcd

        points, _ = read_pcd(CHAIR)
        return np.asarray(points, dtype=np.float64), f"KeypointNet chair {CHAIR.stem}"
    rng = np.random.default_rng(0)
    points = rng.normal(size=(2048, 3))
    return points / np.linalg.norm(points, axis=1, keepdims=True), "2048 random sphere points"


def _best_of(repeats: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    points, described = _cloud()
    n = len(points)
    print(f"# torch {torch.__version__}, {args.threads} thread(s), device {device}")
    print(f"# {platform.processor() or platform.machine()}, cloud: {described}, N = {n}")
    print(f"# times: best of {args.repeats} runs, seconds")

    seconds, raw = _best_of(args.repeats, lambda: geodesic_matrix(points))
    print(f"geodesic_matrix  N={n} k=20: {seconds:.3f} s")
    geodesic = torch.as_tensor(normalise_geodesic(raw), dtype=torch.float32, device=device)

    rng = np.random.default_rng(1)
    counts_np = rng.integers(0, 30, size=n)
    counts_np[rng.random(n) < 0.02] = 0
    counts = torch.as_tensor(counts_np, device=device)
    for c in args.channels:
        feats = torch.as_tensor(rng.normal(size=(n, c)), dtype=torch.float32, device=device)
        feats[counts == 0] = 0

        def run_matmul(feats=feats):
            out = geodesic_smooth(feats, counts, geodesic, sigma=0.01)
            _sync(device)
            return out

        t_fast, _ = _best_of(args.repeats, run_matmul)
        seen = np.flatnonzero(counts_np > 0)
        subset = seen if args.loop_points <= 0 else seen[: args.loop_points]

        def run_loop(feats=feats, subset=subset):
            out = reference_geodesic_smooth_loop(feats, counts, geodesic, 0.01, points=subset)
            _sync(device)
            return out

        t_loop, _ = _best_of(1 if len(subset) == len(seen) else args.repeats, run_loop)
        if len(subset) < len(seen):
            t_full = t_loop * len(seen) / len(subset)
            loop_text = (
                f"{t_full:.2f} s EXTRAPOLATED from {t_loop:.3f} s over {len(subset)} of "
                f"{len(seen)} seen points"
            )
        else:
            t_full = t_loop
            loop_text = f"{t_full:.2f} s (full loop, {len(seen)} seen points)"
        print(
            f"smoothing N={n} C={c}: matmul {t_fast:.3f} s | loop {loop_text} | "
            f"speed-up {t_full / t_fast:.0f}x"
        )


if __name__ == "__main__":
    main()
