"""Rule ``features``: back-projected, smoothed features of one part's shapes (bt3d.stages)."""

from _common import provenance, run


def main(snakemake) -> None:
    from bt3d.settings import FeatureSettings
    from bt3d.stages import part_features

    part_features(
        snakemake.input.geodesics,
        snakemake.input.shapes,
        FeatureSettings.from_dict(snakemake.params.features),
        snakemake.params.device,
        snakemake.threads,
        snakemake.output.features,
        provenance(snakemake),
        snakemake.wildcards.part,
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
