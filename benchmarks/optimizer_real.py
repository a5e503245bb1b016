"""Fast vs reference keypoint optimiser on a finished run's real features and geodesics.

For every category of ``results/<run>`` the test shapes of its feature/geodesic shards are
solved with the run's prototypes by the fast solver (all test shapes) and by the reference
solver (5000 Adam steps, the first ``--max-shapes`` test shapes). Printed per category and
overall: median wall and CPU time per shape, their ratio, mIoU and PCK at 0.00..0.10
(:func:`bt3d.metrics.evaluate_category` on raw geodesics = normalised * scale, as
``scripts/evaluate.py`` does) and the mean geodesic error per keypoint (ground-truth
keypoints whose semantic id the prototypes know), for both solvers on the same shapes.

Artifacts are read with the workflow's own readers (``bt3d.results``), which delete a
file whose header does not match: point this at a copy of the run if the run must stay intact.
Reference predictions can be cached (``--reference-cache``) since they take ~40 s per shape.

Usage:
    python benchmarks/optimizer_real.py results/<run> [--dataset data/synthetic]
        [--max-shapes 4] [--reference-steps 5000] [--reference-cache ref.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
from bt3d.fewshot import KeypointPrototypes  # noqa: E402
from bt3d.io import read_annotations  # noqa: E402
from bt3d.metrics import DEFAULT_THRESHOLDS, evaluate_category  # noqa: E402
from bt3d.optimize import optimise_keypoints  # noqa: E402
from bt3d.results import read_feature_part, read_geodesic_part  # noqa: E402


def load_category(run: Path, dataset: Path, category: str) -> dict:
    """Prototypes and test shapes (model id, features, normalised D, raw D, annotation)."""
    annotations = {
        a.model_id: a for a in read_annotations(dataset / "annotations" / f"{category}.json")
    }
    tests = []
    feature_paths = sorted((run / "features" / category).glob("shard-*.npz"))
    for path in feature_paths:  # the test parts (the shots part holds the labelled shapes)
        expected = {"category": category, "part": path.stem}
        geo_path = str(run / "geodesics" / category / path.name)
        geo = read_geodesic_part(geo_path, {"kind": "geodesics", **expected})
        features = read_feature_part(
            str(path), {"kind": "features", **expected}, geo_path, geo["model_ids"]
        )
        for i, model_id in enumerate(geo["model_ids"]):
            if geo["labelled"][i]:
                continue
            norm = geo["geodesic"][i].astype(np.float64)
            tests.append(
                {
                    "model_id": model_id,
                    "features": features[i].astype(np.float32),
                    "geodesic": norm,
                    "raw": norm * geo["scale"][i],
                    "truth": annotations[model_id],
                }
            )
    prototypes = KeypointPrototypes.load(run / "prototypes" / f"{category}.npz")
    return {"prototypes": prototypes, "tests": tests}


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def mean_error(preds: list[dict], tests: list[dict]) -> tuple[float, int]:
    """Mean raw geodesic error over ground-truth keypoints whose id has a prediction."""
    errors = []
    for pred, test in zip(preds, tests, strict=True):
        where = {int(s): int(i) for s, i in zip(pred["semantic_ids"], pred["indices"], strict=True)}
        truth = test["truth"]
        for sid, idx in zip(truth.semantic_ids, truth.point_indices, strict=True):
            if int(sid) in where:
                errors.append(test["raw"][where[int(sid)], int(idx)])
    return (float(np.mean(errors)) if errors else float("nan")), len(errors)


def scores(preds: list[dict], tests: list[dict]) -> dict:
    table = evaluate_category(
        preds, [t["truth"] for t in tests], [t["raw"] for t in tests], DEFAULT_THRESHOLDS
    )
    err, n = mean_error(preds, tests)
    return {"miou": table["miou"].to_numpy(), "pck": table["pck"].to_numpy(), "err": err, "n": n}


def fmt(curve) -> str:
    return " ".join(f"{v:.3f}" for v in curve)


def as_record(pred) -> dict:
    return {
        "semantic_ids": pred.semantic_ids.tolist(),
        "indices": pred.indices.tolist(),
        "loss": pred.final_loss,
    }


def report(name: str, rows: dict, times: dict) -> None:
    tf, tr = times["fast"], times["reference"]
    print(f"\n== {name} ==")
    if tf["wall"]:
        line = (
            f"  time/shape (median; 2 shared cores, load from other jobs): "
            f"fast wall {np.median(tf['wall']) * 1000:.0f} ms, "
            f"cpu {np.median(tf['cpu']) * 1000:.0f} ms "
            f"(n={len(tf['wall'])}, steps mean {np.mean(tf['steps']):.0f}, max {max(tf['steps'])})"
        )
        if tr["wall"]:
            line += (
                f"; reference wall {np.median(tr['wall']):.1f} s, cpu {np.median(tr['cpu']):.1f} s "
                f"(n={len(tr['wall'])}); ratio wall "
                f"{np.median(tr['wall']) / np.median(tf['wall']):.0f}x, cpu "
                f"{np.median(tr['cpu']) / np.median(tf['cpu']):.0f}x"
            )
        print(line)
    print(f"  {'':24s}       t: {fmt(DEFAULT_THRESHOLDS)}")
    for label, (preds, tests) in rows.items():
        if not preds:
            continue
        s = scores(preds, tests)
        print(f"  {label:24s} mIoU  {fmt(s['miou'])}")
        print(f"  {'':24s} PCK   {fmt(s['pck'])}")
        print(
            f"  {'':24s} mean geodesic error {s['err']:.4f} over {s['n']} keypoints; "
            f"mean final loss {np.mean([p['loss'] for p in preds]):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="results/<run> folder")
    parser.add_argument(
        "--dataset", type=Path, default=None, help="default: <run>/../../data/synthetic"
    )
    parser.add_argument("--categories", nargs="+", default=None)
    parser.add_argument(
        "--max-shapes", type=int, default=4, help="test shapes per category for the reference"
    )
    parser.add_argument("--reference-steps", type=int, default=5000)
    parser.add_argument("--reference-cache", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast-options", default="{}", help="JSON dict of extra fast-mode options")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: timings comparable)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = args.dataset or args.run.resolve().parents[1] / "data" / "synthetic"
    categories = args.categories or sorted(p.name for p in (args.run / "features").iterdir())
    fast_options = json.loads(args.fast_options)
    cache = {}
    if args.reference_cache and args.reference_cache.is_file():
        cache = json.loads(args.reference_cache.read_text())
    print(
        f"run {args.run}, dataset {dataset}; fast options {fast_options}; reference "
        f"{args.reference_steps} steps on <= {args.max_shapes} shapes/category; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; machine: 2 cores shared "
        "with other jobs, so wall times are noisy (CPU time less so)"
    )
    every = {"fast(all)": ([], []), "fast(same shapes)": ([], []), "reference": ([], [])}
    all_times = {k: {"wall": [], "cpu": [], "steps": []} for k in ("fast", "reference")}
    for category in categories:
        data = load_category(args.run, dataset, category)
        protos, tests = data["prototypes"], data["tests"]
        times = {k: {"wall": [], "cpu": [], "steps": []} for k in ("fast", "reference")}
        optimise_keypoints(tests[0]["features"], tests[0]["geodesic"], protos, **fast_options)
        fast, ref = [], []
        for i, t in enumerate(tests):
            p, wall, cpu = timed(
                optimise_keypoints, t["features"], t["geodesic"], protos, mode="fast",
                seed=args.seed, **fast_options,
            )  # fmt: skip
            fast.append(as_record(p))
            for key, v in (("wall", wall), ("cpu", cpu), ("steps", p.steps_run)):
                times["fast"][key].append(v)
            if i >= args.max_shapes:
                continue
            key = f"{category}/{t['model_id']}/{args.reference_steps}/{args.seed}"
            if key not in cache:
                p, wall, cpu = timed(
                    optimise_keypoints, t["features"], t["geodesic"], protos, mode="reference",
                    steps=args.reference_steps, seed=args.seed,
                )  # fmt: skip
                cache[key] = {**as_record(p), "wall": wall, "cpu": cpu}
                print(f"  {category} {t['model_id']}: reference {wall:.1f} s", flush=True)
                if args.reference_cache:
                    args.reference_cache.write_text(json.dumps(cache))
            ref.append(cache[key])
            times["reference"]["wall"].append(cache[key]["wall"])
            times["reference"]["cpu"].append(cache[key]["cpu"])
        n = len(ref)
        rows = {
            f"fast(all {len(tests)})": (fast, tests),
            f"fast(same {n})": (fast[:n], tests[:n]),
            f"reference({n})": (ref, tests[:n]),
        }
        report(f"{category}: K={protos.num_keypoints}, C={protos.features.shape[1]}", rows, times)
        for (p, t), key in zip(rows.values(), every, strict=True):
            every[key][0].extend(p)
            every[key][1].extend(t)
        for k in all_times:
            for m in all_times[k]:
                all_times[k][m] += times[k][m]
    report(f"overall, pooled over shapes ({', '.join(categories)})", every, all_times)


if __name__ == "__main__":
    main()
