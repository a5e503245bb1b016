"""Rule ``prototypes``: the few-shot keypoint model of a category from its labelled shapes."""

from _common import (
    check_same_shapes,
    dataset_root,
    expected_header,
    read_feature_shard,
    read_geodesic_shard,
    run,
)


def main(snakemake) -> None:
    import numpy as np

    from bt3d.fewshot import LabelledShape, build_prototypes
    from bt3d.io import KeypointNetDataset

    category = snakemake.wildcards.category
    dataset = KeypointNetDataset(dataset_root(snakemake.input.annotations))
    annotations = dataset.annotations(category)
    labelled: list[LabelledShape] = []
    for shard, (feat_path, geo_path) in enumerate(
        zip(snakemake.input.features, snakemake.input.geodesics, strict=True)
    ):
        geo = read_geodesic_shard(geo_path, expected_header(snakemake, "geodesics", shard=shard))
        feat = read_feature_shard(feat_path, expected_header(snakemake, "features", shard=shard))
        check_same_shapes(feat_path, feat["model_ids"], geo_path, geo["model_ids"])
        for i, model_id in enumerate(geo["model_ids"]):
            if not geo["labelled"][i]:
                continue
            ann = annotations[model_id]
            labelled.append(
                LabelledShape(
                    features=feat["features"][i].astype(np.float32),
                    geodesic_normalised=geo["geodesic"][i].astype(np.float64),
                    semantic_ids=ann.semantic_ids,
                    point_indices=ann.point_indices,
                    model_id=model_id,
                )
            )
    prototypes = build_prototypes(labelled, reduction=snakemake.params.reduction)
    prototypes.save(
        snakemake.output.prototypes,
        expected_header(
            snakemake,
            "prototypes",
            shot_ids=[s.model_id for s in labelled],
            # recorded for `bt3d predict`, which checks features of users' own shapes against it
            backbone=snakemake.config["backbone"]["name"],
            layer=snakemake.config["backbone"]["layer"],
        ),
    )
    print(
        f"{category}: {prototypes.num_keypoints} keypoints from {len(labelled)} labelled "
        f"shapes ({', '.join(s.model_id for s in labelled)})"
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
