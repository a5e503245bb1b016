"""Rule ``features``: back-projected, geodesically smoothed features of one shard's shapes.

Writes ``features`` (S, N, C) float32, ``counts`` (S, N) views that saw each point, and
``model_ids`` (S,), in the order of the shard's geodesics file (whose matrices are reused).
"""

from _common import dataset_root, expected_header, read_geodesic_shard, run


def main(snakemake) -> None:
    import time

    import numpy as np
    import torch

    from bt3d.backbones import get_backbone
    from bt3d.cache import save_arrays
    from bt3d.device import resolve_device
    from bt3d.io import KeypointNetDataset
    from bt3d.pipeline import extract_shape_features

    feat = snakemake.params.features
    render, bb = feat["render"], feat["backbone"]
    category, shard = snakemake.wildcards.category, int(snakemake.wildcards.shard)
    torch.set_num_threads(max(1, snakemake.threads))
    device = resolve_device(snakemake.params.device)
    dataset = KeypointNetDataset(dataset_root(snakemake.input.annotations))
    geo = read_geodesic_shard(
        snakemake.input.geodesics, expected_header(snakemake, "geodesics", shard=shard)
    )
    backbone = get_backbone(
        bb["name"], device=device, checkpoint=bb["checkpoint"], layer=bb["layer"]
    )
    features, counts = [], []
    for i, model_id in enumerate(geo["model_ids"]):
        start = time.perf_counter()
        shape = extract_shape_features(
            dataset.load_mesh(category, model_id),
            dataset.load_points(category, model_id),
            backbone,
            n_azimuth=render["n_azimuth"],
            n_polar=render["n_polar"],
            distance=render["distance"],
            fov=render["fov"],
            image_size=render["image_size"],
            render_backend=render["backend"],
            textured=render["textured"],
            sampling=feat["sampling"],
            normalise=feat.get("normalise", False),
            sigma=feat["sigma"],
            batch_size=bb["batch_size"],
            precision=bb["precision"],
            tokens=bb.get("tokens", "all"),
            device=device,
            geodesic=geo["geodesic"][i].astype(np.float64) * geo["scale"][i],
        )
        features.append(shape.features.astype(np.float32))
        counts.append(shape.counts.astype(np.int64))
        print(
            f"{category}/{model_id}: {shape.features.shape} features, "
            f"{shape.seen_fraction:.1%} of points seen, {time.perf_counter() - start:.1f} s"
        )
    dim = features[0].shape[1] if features else 0
    save_arrays(
        snakemake.output.features,
        {
            "features": np.stack(features) if features else np.zeros((0, 0, dim), np.float32),
            "counts": np.stack(counts) if counts else np.zeros((0, 0), np.int64),
            "model_ids": np.asarray(geo["model_ids"], dtype=str),
        },
        {
            **feat,
            **expected_header(
                snakemake, "features", shard=shard, backbone=bb["name"], model_ids=geo["model_ids"]
            ),
        },
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
