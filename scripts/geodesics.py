"""Rule ``geodesics``: geodesic matrices of one part's point clouds (bt3d.stages)."""

from _common import run


def main(snakemake) -> None:
    from bt3d.io import KeypointNetDataset
    from bt3d.results import Provenance
    from bt3d.settings import GeodesicSettings
    from bt3d.stages import part_geodesics

    part_geodesics(
        KeypointNetDataset(snakemake.params.dataset_root),
        snakemake.input.sample_order,
        snakemake.params.selection,
        snakemake.wildcards.part,
        snakemake.input.shapes,
        GeodesicSettings.from_dict(snakemake.params.geodesic),
        snakemake.output.geodesics,
        Provenance(snakemake.wildcards.category, snakemake.params.provenance),
        threads=max(1, snakemake.threads),
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
