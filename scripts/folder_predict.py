"""Rule ``folder_predict``: keypoints on one chunk of the folder's meshes (dataset: folder)."""

from _common import run


def main(snakemake) -> None:
    from pathlib import Path

    from bt3d.detect import DetectSettings
    from bt3d.folder import predict_chunk

    p = snakemake.params
    predict_chunk(
        [Path(m) for m in p.meshes],
        Path(snakemake.input.prototypes),
        DetectSettings(**p.settings),
        Path(p.cache),
        Path(snakemake.output.predictions),
    )
    print(f"keypoints on {len(p.meshes)} mesh(es): {snakemake.output.predictions}")


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
