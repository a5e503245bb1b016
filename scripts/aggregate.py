"""Rule ``aggregate``: the run's tables and manifest (bt3d.tables)."""

from _common import run


def main(snakemake) -> None:
    from bt3d.tables import write_tables

    outputs = {name: snakemake.output[name] for name in snakemake.output.keys()}
    write_tables(
        snakemake.params.metrics,
        outputs,
        snakemake.params.config,
        snakemake.params.provenance,
        snakemake.params.bootstrap["bootstrap_resamples"],
        snakemake.params.bootstrap["bootstrap_seed"],
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
