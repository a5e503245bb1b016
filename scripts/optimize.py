"""Rule ``optimize``: keypoint predictions with confidences for one test part's shapes."""

from _common import (
    check_same_shapes,
    expected_header,
    read_feature_part,
    read_geodesic_part,
    rebuild_on_error,
    run,
)


def main(snakemake) -> None:
    import numpy as np

    from bt3d.cache import make_header, save_json_atomic
    from bt3d.device import resolve_device
    from bt3d.fewshot import KeypointPrototypes
    from bt3d.optimize import optimise_keypoints

    opt = snakemake.params.optimiser
    device = resolve_device(snakemake.params.device)
    part = snakemake.wildcards.test_part
    geo = read_geodesic_part(
        snakemake.input.geodesics, expected_header(snakemake, "geodesics", part=part)
    )
    feat = read_feature_part(
        snakemake.input.features, expected_header(snakemake, "features", part=part)
    )
    check_same_shapes(
        snakemake.input.features, feat["model_ids"], snakemake.input.geodesics, geo["model_ids"]
    )
    with rebuild_on_error(snakemake.input.prototypes):
        prototypes = KeypointPrototypes.load(
            snakemake.input.prototypes, expected_header(snakemake, "prototypes")
        )
    predictions = []
    for i, model_id in enumerate(geo["model_ids"]):
        pred = optimise_keypoints(
            feat["features"][i].astype(np.float32),
            geo["geodesic"][i].astype(np.float64),
            prototypes,
            mode=opt["mode"],
            steps=opt.get("steps"),
            lr=opt["lr"],
            alpha=opt["alpha"],
            beta=opt["beta"],
            seed=opt["seed"],
            device=device,
        )
        predictions.append(
            {
                "model_id": model_id,
                "semantic_ids": pred.semantic_ids,
                "indices": pred.indices,
                "confidences": pred.confidences,
                "steps_run": pred.steps_run,
                "final_loss": pred.final_loss,
            }
        )
        print(f"{model_id}: {pred.steps_run} steps, loss {pred.final_loss:.4f}")
    save_json_atomic(
        snakemake.output.predictions,
        {
            "header": make_header(
                **expected_header(snakemake, "predictions", part=part),
                seed=opt["seed"],
                model_ids=[p["model_id"] for p in predictions],
            ),
            "category": snakemake.wildcards.category,
            "part": part,
            "optimiser": opt,
            "known_semantic_ids": [int(k) for k in prototypes.semantic_ids],
            "predictions": predictions,
        },
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
