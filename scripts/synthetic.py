"""Rule ``synthetic``: write the embedded procedural dataset in KeypointNet layout, into a
folder the workflow owns (marked by the ``owner`` output)."""

from pathlib import Path

from _common import run


def main(snakemake) -> None:
    from bt3d.io import claim_dataset_folder
    from bt3d.synthetic import generate_dataset

    p = snakemake.params
    root = Path(snakemake.params.dataset_root)
    claim_dataset_folder(root, "synthetic")  # first: a killed run leaves a folder it owns
    generate_dataset(
        root,
        categories=tuple(p.categories),
        shapes_per_category=p.shapes_per_category,
        seed=p.seed,
    )
    print(f"synthetic dataset written to {root}: {', '.join(p.categories)}")


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
