"""FLOPs per image of the DINOv2 ViTs as bt3d builds them, counted by torch (no weights).

Builds each architecture of ``bt3d.backbones.vit.VIT_CONFIGS`` on the meta device and runs
one 224 px image through ``block_outputs`` (the feature path: all blocks) under
``torch.utils.flop_counter.FlopCounterMode``, which counts the matrix products
(2 FLOPs per multiply-add). The ratio to ViT-S/14 scales the ViT-S feature time measured
here to the paper's ViT-g/14 (docs/workflow.md, "Run on a SLURM cluster").

With ``--measure``, also times ViT-S/14 and ViT-g/14 (random weights, CPU, ``--threads``)
on batches of ``--batch`` images, interleaved (S, g, S, g, ...), and prints seconds per image
and the process's peak RSS after building and running each: the measured CPU ratio next to
the FLOP ratio, and the host memory a ViT-g features job needs for its weights.

    python benchmarks/vit_flops.py [--image-size 224] [--measure --batch 8 --repeats 2]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from bt3d.backbones.vit import VIT_CONFIGS, DinoVisionTransformer


def flops_per_image(arch: str, image_size: int) -> int:
    """Matrix-product FLOPs of one (1, 3, S, S) image through every block of ``arch``."""
    config = VIT_CONFIGS[arch]
    with torch.device("meta"):
        vit = DinoVisionTransformer(config)
        image = torch.zeros(1, 3, image_size, image_size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        vit.block_outputs(image, (config.depth - 1,))
    return counter.get_total_flops()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux: ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(image_size: int, batch: int, repeats: int) -> None:
    """Seconds per image of ViT-S/14 and ViT-g/14 on this CPU, interleaved; peak RSS."""
    torch.manual_seed(0)
    images = torch.randn(batch, 3, image_size, image_size)
    models = {}
    for arch in ("vits14", "vitg14"):
        models[arch] = DinoVisionTransformer(VIT_CONFIGS[arch]).eval()
        print(f"built {arch}: peak RSS {peak_rss_mb():.0f} MiB")
    seconds = {arch: [] for arch in models}
    for _ in range(repeats):
        for arch, vit in models.items():
            start = time.perf_counter()
            with torch.no_grad():
                vit.block_outputs(images, (vit.config.depth - 1,))
            seconds[arch].append((time.perf_counter() - start) / batch)
            print(f"{arch}: {seconds[arch][-1]:.3f} s/image; peak RSS {peak_rss_mb():.0f} MiB")
    best = {arch: min(values) for arch, values in seconds.items()}
    print(
        f"CPU s/image (best of {repeats}): vits14 {best['vits14']:.3f}, "
        f"vitg14 {best['vitg14']:.3f}, ratio {best['vitg14'] / best['vits14']:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--measure", action="store_true", help="also time both on this CPU")
    parser.add_argument("--batch", type=int, default=8, help="images per forward pass")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    small = flops_per_image("vits14", args.image_size)
    print(f"arch    params(M)  GFLOP/image ({args.image_size} px)  ratio to vits14")
    for arch, config in VIT_CONFIGS.items():
        with torch.device("meta"):
            params = sum(p.numel() for p in DinoVisionTransformer(config).parameters())
        flops = flops_per_image(arch, args.image_size)
        print(f"{arch}  {params / 1e6:9.1f}  {flops / 1e9:11.2f}  {flops / small:14.2f}")
    if args.measure:
        measure(args.image_size, args.batch, args.repeats)


if __name__ == "__main__":
    main()
