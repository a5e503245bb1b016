"""Rule ``prototypes``: the few-shot keypoint model of a category from its labelled shapes
(the ``shots`` part)."""

from _common import (
    check_same_shapes,
    dataset_root,
    expected_header,
    read_feature_part,
    read_geodesic_part,
    run,
)


def main(snakemake) -> None:
    import numpy as np

    from bt3d.fewshot import build_prototypes, labelled_shape
    from bt3d.io import KeypointNetDataset

    category, p = snakemake.wildcards.category, snakemake.params
    annotations = KeypointNetDataset(dataset_root(snakemake.input.annotations)).annotations(
        category
    )
    geo_path, feat_path = snakemake.input.geodesics, snakemake.input.features
    geo = read_geodesic_part(geo_path, expected_header(snakemake, "geodesics", part="shots"))
    feat = read_feature_part(feat_path, expected_header(snakemake, "features", part="shots"))
    check_same_shapes(feat_path, feat["model_ids"], geo_path, geo["model_ids"])
    by_shape = {k: feat[k] if feat[k] is not None else [None] * len(geo["model_ids"])
                for k in ("unsmoothed", "counts")}  # fmt: skip
    labelled = [
        labelled_shape(
            features=feat["features"][i].astype(np.float32),
            geodesic_normalised=geo["geodesic"][i].astype(np.float64),
            semantic_ids=annotations[model_id].semantic_ids,
            point_indices=annotations[model_id].point_indices,
            model_id=model_id,
            labelled=p.labelled,  # features.labelled: points | annotated_xyz (the authors')
            unsmoothed=by_shape["unsmoothed"][i],
            counts=by_shape["counts"][i],
            sigma=p.sigma,
        )
        for i, model_id in enumerate(geo["model_ids"])
    ]
    prototypes = build_prototypes(labelled, reduction=p.reduction)
    prototypes.save(
        snakemake.output.prototypes,
        # backbone and layer are recorded for `bt3d predict`, which checks users' features
        expected_header(
            snakemake, "prototypes", shot_ids=geo["model_ids"], backbone=p.backbone, layer=p.layer
        ),
    )
    print(
        f"{category}: {prototypes.num_keypoints} keypoints from {len(labelled)} labelled "
        f"shapes ({', '.join(geo['model_ids'])})"
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
