"""Rule ``prototypes``: the few-shot keypoint model of a category (bt3d.stages)."""

from _common import dataset, provenance, run


def main(snakemake) -> None:
    from bt3d.settings import PrototypeSettings
    from bt3d.stages import category_prototypes

    category_prototypes(
        dataset(snakemake),
        snakemake.input.features,
        snakemake.input.geodesics,
        PrototypeSettings.from_dict(snakemake.params.prototypes),
        snakemake.output.prototypes,
        provenance(snakemake),
        snakemake.params.backbone,
        snakemake.wildcards.shot_set,
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
