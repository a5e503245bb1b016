"""`make check-vitg`: the paper's ViT-g/14 path through every rule, tiny, on CPU.

config/paper.yaml with a random-weights DINOv2 ViT-g/14 checkpoint in the official key format
(``dinov2_vitg14_pretrain.pth`` layout, written here), on the embedded synthetic dataset (the
real KeypointNet cannot be fetched here): 2 categories, 3 shots + 2 test shapes each, 4 views
(n_azimuth 2 x n_polar 1 + 2 poles) of the paper's 224 px, one shard per category; every other
setting is the paper's (last_norm layer, float32, batch 8, nearest sampling, 5000 reference
steps, summed prototypes). Checks that every rule ran and that the features have 1536
channels; prints per-view time, memory and the GPU memory a full run needs.

    python benchmarks/check_vitg.py [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CATEGORIES = ["airplane", "chair"]
VIEWS = 2 * 1 + 2
RULES = ["synthetic", "geodesics", "features", "prototypes", "optimize", "evaluate",
         "plot_keypoints", "aggregate", "plot_curves"]  # fmt: skip


def write_checkpoint(path: Path) -> float:
    """A random ViT-g/14 state dict under the official keys; returns seconds taken."""
    import torch

    from bt3d.backbones.vit import VIT_CONFIGS, DinoVisionTransformer

    start = time.perf_counter()
    torch.manual_seed(0)
    torch.save(DinoVisionTransformer(VIT_CONFIGS["vitg14"]).state_dict(), path)
    return time.perf_counter() - start


def write_override(workdir: Path, checkpoint: Path) -> Path:
    override = workdir / "vitg-tiny.yaml"
    override.write_text(
        "run: vitg-tiny\n"
        "dataset:\n  name: synthetic\n  root: data/synthetic-vitg\n"
        f"  categories: {CATEGORIES}\n  sample_order: auto\n  max_test_shapes: 2\n"
        "  synthetic:\n    shapes_per_category: 5\n    seed: 0\n"
        "render:\n  n_azimuth: 2\n  n_polar: 1\n  image_size: 224\n"
        f"backbone:\n  checkpoint: {checkpoint}\n"
        "device: cpu\nshards: 1\n"
    )
    return override


def jobs_run(output: str) -> dict[str, int]:
    counts = {}
    for name, count in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE):
        counts.setdefault(name, int(count))  # the first table is the plan
    return counts


def mib(line: str, what: str) -> int:
    return int(re.search(rf"{what} (\d+) MiB", line).group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bt3d-vitg-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        checkpoint = workdir / "dinov2_vitg14_pretrain.pth"
        made = write_checkpoint(checkpoint)
        print(f"checkpoint {checkpoint}: {checkpoint.stat().st_size / 2**30:.2f} GiB, {made:.0f} s")
        override = write_override(workdir, checkpoint)
        cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(REPO / "config" / "paper.yaml"), str(override),
               "--cores", "1"]  # fmt: skip
        start = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            print((result.stdout + result.stderr)[-4000:])
            print(f"FAILED: snakemake exited {result.returncode} after {wall:.0f} s")
            return 1
        ran = jobs_run(result.stdout + result.stderr)
        missing = [r for r in RULES if not ran.get(r)]
        assert not missing, f"rules that did not run: {missing}"
        results = workdir / "results" / "vitg-tiny"
        for category in CATEGORIES:  # the shots part (3 shapes) and one test shard (2)
            for part, shapes in (("shots", 3), ("shard-0", 2)):
                with np.load(results / "features" / category / f"{part}.npz") as npz:
                    shape = npz["features"].shape
                assert shape[0] == shapes and shape[2] == 1536, f"{category} {part} {shape}"
        assert (results / "tables" / "miou.csv").is_file()
        print(f"snakemake --cores 1: {wall:.0f} s; jobs: {ran}")
        report(workdir / "logs" / "vitg-tiny")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(logs: Path) -> None:
    """Per-view time and memory from the features logs, and what a GPU run needs."""
    per_view, loads, weights, peaks = [], [], [], []
    for log in sorted((logs / "features").glob("*.log")):
        text = log.read_text()
        load = re.search(r"loaded in ([\d.]+) s; memory: (.*)", text)
        loads.append(float(load.group(1)))
        weights.append(mib(load.group(2), "RSS now"))
        peaks.append(mib(re.search(r"peak memory: (.*)", text).group(1), "peak"))
        per_view += [float(s) / VIEWS for s in re.findall(r"seen, ([\d.]+) s$", text, re.M)]
    print(f"features jobs: {len(loads)}; backbone load {np.median(loads):.0f} s (median)")
    print(f"seconds per view (render + ViT-g forward + back-projection, batch {VIEWS}): "
          f"median {np.median(per_view):.1f}, min {min(per_view):.1f}, max {max(per_view):.1f} "
          f"over {len(per_view)} shapes")  # fmt: skip
    print(f"RSS after loading ViT-g: {max(weights)} MiB; peak RSS of a features job: "
          f"{max(peaks)} MiB; so a batch of {VIEWS} views adds <= "
          f"{max(p - w for p, w in zip(peaks, weights, strict=True))} MiB")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
