"""Rule ``evaluate``: a category's metrics and random baseline (bt3d.evaluation)."""

from _common import dataset, provenance, run


def main(snakemake) -> None:
    from bt3d.evaluation import evaluate_category_files

    evaluate_category_files(
        dataset(snakemake),
        snakemake.input.predictions,
        snakemake.input.geodesics,
        snakemake.params.thresholds,
        snakemake.params.baseline_seed,
        snakemake.output.metrics,
        provenance(snakemake),
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
