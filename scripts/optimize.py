"""Rule ``optimize``: keypoint predictions for one test part's shapes (bt3d.stages)."""

from _common import provenance, run


def main(snakemake) -> None:
    from bt3d.settings import OptimiserSettings
    from bt3d.stages import part_predictions

    part_predictions(
        snakemake.input.features,
        snakemake.input.geodesics,
        snakemake.input.prototypes,
        OptimiserSettings.from_dict(snakemake.params.optimiser),
        snakemake.params.device,
        snakemake.output.predictions,
        provenance(snakemake),
        snakemake.wildcards.part,
        snakemake.wildcards.shot_set,
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
