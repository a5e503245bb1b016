"""Rule ``folder_results``: bt3d detect's outputs from the chunks' keypoints (dataset: folder)."""

from _common import run


def main(snakemake) -> None:
    from pathlib import Path

    from bt3d.detect import DetectSettings, pair_arguments
    from bt3d.folder import write_folder_results

    p = snakemake.params
    write_folder_results(
        pair_arguments(p.labelled),
        Path(p.shapes),
        Path(p.out),
        [Path(c) for c in snakemake.input.predictions],
        DetectSettings(**p.settings),
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
