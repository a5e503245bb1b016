"""Rule ``compare``: the variants' paired differences, as a table and a plot (bt3d.tables)."""

from _common import run


def main(snakemake) -> None:
    from bt3d.plots import plot_differences, save_figure
    from bt3d.tables import read_metrics, write_comparison

    p = snakemake.params
    table = write_comparison(
        read_metrics(p.metrics),
        p.reference,
        p.bootstrap["bootstrap_resamples"],
        p.bootstrap["bootstrap_seed"],
        snakemake.output.table,
    )
    save_figure(plot_differences(table, p.max_threshold), snakemake.output.plot)


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
