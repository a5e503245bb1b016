"""Geodesic engines side by side: seconds per shape and bitwise agreement with scipy.

For every point cloud given (default: the embedded dataset's clouds, plus the real KeypointNet
chair in ../shared when it is there), runs :func:`bt3d.geodesic.geodesic_matrix` (20-NN graph,
the whole function: graph, symmetrisation, all-pairs shortest paths, unreachable pairs) with
scipy on one thread (the reference) and the native engine on 1 and on 2 threads, interleaved
in rounds, and checks each result bit for bit against scipy's. Prints the median seconds per
shape over all clouds and rounds, the spread, and the ratio to scipy.

Usage::

    PYTHONPATH=. python benchmarks/geodesics.py [--rounds 3] [CLOUD.pcd ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bt3d.geodesic import geodesic_matrix
from bt3d.io.pcd import read_pcd

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_CLOUDS = sorted((ROOT / "data" / "synthetic" / "pcds").glob("*/*.pcd"))
DEFAULT_CLOUDS = EMBEDDED_CLOUDS + sorted(
    (ROOT.parent / "shared" / "data" / "keypointnet-sample" / "pcds").glob("*/*.pcd")
)
ENGINES = (("scipy", 1), ("native", 1), ("native", 2))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("clouds", nargs="*", type=Path, default=DEFAULT_CLOUDS)
    p.add_argument("--rounds", type=int, default=3, help="passes over the clouds (interleaved)")
    p.add_argument("--k", type=int, default=20)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.clouds is DEFAULT_CLOUDS and not EMBEDDED_CLOUDS:
        raise SystemExit(
            "no embedded clouds in data/synthetic (`make demo` writes them); run it first or "
            "give CLOUD.pcd files"
        )
    clouds = [read_pcd(path)[0] for path in args.clouds]
    seconds = {engine: [] for engine in ENGINES}
    equal = True
    for _ in range(args.rounds):
        for points in clouds:
            results = {}
            for engine, threads in ENGINES:
                t0 = time.perf_counter()
                results[engine, threads] = geodesic_matrix(
                    points, k=args.k, engine=engine, threads=threads
                )
                seconds[engine, threads].append(time.perf_counter() - t0)
            oracle = results["scipy", 1].view(np.uint64)
            equal &= all(np.array_equal(r.view(np.uint64), oracle) for r in results.values())
    scipy = np.median(seconds["scipy", 1])
    print(f"{len(clouds)} clouds x {args.rounds} rounds, k = {args.k}, whole geodesic_matrix")
    print("| engine | threads | s/shape median [IQR] | x scipy |")
    print("|---|---:|---|---:|")
    for (engine, threads), values in seconds.items():
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        print(f"| {engine} | {threads} | {med:.3f} [{q1:.3f}-{q3:.3f}] | {scipy / med:.2f} |")
    print(f"bitwise equal to scipy on every cloud and round: {equal}")
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
