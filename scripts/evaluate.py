"""Rule ``evaluate``: a category's metrics and random baseline (bt3d.evaluation)."""

from _common import run


def main(snakemake) -> None:
    from bt3d.evaluation import evaluate_category_files
    from bt3d.io import KeypointNetDataset
    from bt3d.results import Provenance

    evaluate_category_files(
        KeypointNetDataset(snakemake.params.dataset_root),
        snakemake.input.predictions,
        snakemake.input.geodesics,
        snakemake.params.thresholds,
        snakemake.params.baseline_seed,
        snakemake.output.metrics,
        Provenance(snakemake.wildcards.category, snakemake.params.provenance),
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
