"""Rule ``features``: back-projected, geodesically smoothed features of one part's shapes,
in the order of the part's geodesics artifact (whose matrices are reused)."""

from _common import expected_header, memory_report, read_geodesic_part, run, shape_paths


def main(snakemake) -> None:
    import time

    import torch

    from bt3d.backbones import get_backbone
    from bt3d.device import resolve_device
    from bt3d.stages import part_features

    feat, part = snakemake.params.features, snakemake.wildcards.part
    bb = feat["backbone"]
    torch.set_num_threads(max(1, snakemake.threads))
    device = resolve_device(snakemake.params.device)
    geo = read_geodesic_part(
        snakemake.input.geodesics, expected_header(snakemake, "geodesics", part=part)
    )
    loading = time.perf_counter()
    backbone = get_backbone(
        bb["name"], device=device, checkpoint=bb["checkpoint"], layer=bb["layer"]
    )
    print(f"backbone {bb['name']} loaded in {time.perf_counter() - loading:.1f} s; "
          f"memory: {memory_report(device)}")  # fmt: skip
    part_features(
        geo["model_ids"], shape_paths(snakemake), geo["geodesic"], geo["scale"], backbone, feat,
        device, snakemake.output.features, expected_header(snakemake, "features", part=part),
    )  # fmt: skip
    print(f"after {len(geo['model_ids'])} shapes, peak memory: {memory_report(device)}")


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
