"""Rule ``plot_curves``: mIoU and PCK against the threshold, method vs random baseline."""

from _common import run


def main(snakemake) -> None:
    import pandas as pd

    from bt3d.plots import plot_curves, save_figure

    miou = pd.read_csv(snakemake.input.miou)
    pck = pd.read_csv(snakemake.input.pck)
    base = pd.read_csv(snakemake.input.baseline)
    for metric, ours, column, out in (
        ("mIoU", miou, "miou", snakemake.output.miou),
        ("PCK", pck, "pck", snakemake.output.pck),
    ):
        long = pd.concat(
            [
                ours.rename(columns={column: "value"}).assign(method="ours"),
                base[["category", "threshold", column]]
                .rename(columns={column: "value"})
                .assign(method="random points"),
            ],
            ignore_index=True,
        ).assign(metric_name=metric)
        fig = plot_curves(long, max_threshold=snakemake.params.max_threshold)
        save_figure(fig, out)
        print(f"{out}: {metric} curves of {long['category'].nunique()} categories")


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
