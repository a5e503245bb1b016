"""Rule ``folder_features``: one mesh's features into bt3d detect's cache (dataset: folder)."""

from _common import run


def main(snakemake) -> None:
    from pathlib import Path

    from bt3d.detect import DetectSettings
    from bt3d.folder import mesh_features

    settings = DetectSettings(**snakemake.params.settings)
    path = mesh_features(Path(snakemake.input.mesh), settings, Path(snakemake.params.cache))
    print(f"{snakemake.input.mesh}: features in {path}")


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
