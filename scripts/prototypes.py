"""Rule ``prototypes``: the few-shot keypoint model of a category (bt3d.stages)."""

from _common import run


def main(snakemake) -> None:
    from bt3d.io import KeypointNetDataset
    from bt3d.results import Provenance
    from bt3d.settings import PrototypeSettings
    from bt3d.stages import category_prototypes

    category_prototypes(
        KeypointNetDataset(snakemake.params.dataset_root),
        snakemake.input.features,
        snakemake.input.geodesics,
        PrototypeSettings.from_dict(snakemake.params.prototypes),
        snakemake.output.prototypes,
        Provenance(snakemake.wildcards.category, snakemake.params.provenance),
        snakemake.params.backbone,
        snakemake.wildcards.shot_set,
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
