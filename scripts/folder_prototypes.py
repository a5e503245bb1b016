"""Rule ``folder_prototypes``: keypoint prototypes of the labelled meshes (dataset: folder)."""

from _common import run


def main(snakemake) -> None:
    from pathlib import Path

    from bt3d.detect import DetectSettings, pair_arguments
    from bt3d.folder import write_prototypes

    p = snakemake.params
    names = write_prototypes(
        pair_arguments(p.labelled),
        DetectSettings(**p.settings),
        Path(p.cache),
        Path(snakemake.output.prototypes),
    )
    print(f"{len(names)} keypoints: {', '.join(names)}")


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
