"""Rule ``geodesics``: geodesic matrices of one part's point clouds (bt3d.stages)."""

from _common import dataset, provenance, run


def main(snakemake) -> None:
    from bt3d.settings import GeodesicSettings
    from bt3d.stages import part_geodesics

    part_geodesics(
        dataset(snakemake),
        snakemake.input.sample_order,
        snakemake.params.selection,
        snakemake.wildcards.part,
        snakemake.input.shapes,
        GeodesicSettings.from_dict(snakemake.params.geodesic),
        snakemake.output.geodesics,
        provenance(snakemake),
        threads=max(1, snakemake.threads),
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
