"""Rule ``plot_curves``: mIoU and PCK against the threshold, variants (with their 95 %
intervals) vs the random baseline (bt3d.plots)."""

from _common import run


def main(snakemake) -> None:
    import pandas as pd

    from bt3d.plots import metric_curves, plot_curves, save_figure

    base = pd.read_csv(snakemake.input.baseline)
    for metric, column in (("mIoU", "miou"), ("PCK", "pck")):
        long = metric_curves(pd.read_csv(snakemake.input[column]), base, column, metric)
        fig = plot_curves(long, max_threshold=snakemake.params.max_threshold)
        save_figure(fig, snakemake.output[column])
        print(f"{snakemake.output[column]}: {metric} of {long['category'].nunique()} categories")


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
