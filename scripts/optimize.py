"""Rule ``optimize``: keypoint predictions with confidences for one shard's test shapes."""

from _common import read_feature_shard, read_geodesic_shard, run


def main(snakemake) -> None:
    import numpy as np

    from bt3d.cache import save_json_atomic
    from bt3d.device import resolve_device
    from bt3d.errors import DataError
    from bt3d.fewshot import KeypointPrototypes
    from bt3d.optimize import optimise_keypoints

    opt = snakemake.params.optimiser
    device = resolve_device(snakemake.params.device)
    geo = read_geodesic_shard(snakemake.input.geodesics)
    feat = read_feature_shard(snakemake.input.features)
    if feat["model_ids"] != geo["model_ids"]:
        raise DataError(f"{snakemake.input.features}: model ids differ from its geodesics shard")
    prototypes = KeypointPrototypes.load(snakemake.input.prototypes)
    predictions = []
    for i, model_id in enumerate(geo["model_ids"]):
        if geo["labelled"][i]:
            continue
        pred = optimise_keypoints(
            feat["features"][i].astype(np.float32),
            geo["geodesic"][i].astype(np.float64),
            prototypes,
            mode=opt["mode"],
            steps=opt["steps"],
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
            "category": snakemake.wildcards.category,
            "shard": int(snakemake.wildcards.shard),
            "optimiser": opt,
            "predictions": predictions,
        },
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
