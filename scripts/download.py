"""Rules ``download`` (one KeypointNet category) and ``download_sample_order`` (bt3d.download)."""

from pathlib import Path

from _common import run


def main(snakemake) -> None:
    from bt3d.download import download_category, download_sample_order

    if snakemake.rule == "download_sample_order":
        p = snakemake.params
        download_sample_order(Path(snakemake.output.sample_order), p.url, p.sha256)
    else:
        download_category(
            Path(snakemake.params.dataset_root),
            snakemake.wildcards.category,
            snakemake.params.repo_id,
        )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
