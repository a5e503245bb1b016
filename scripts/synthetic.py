"""Rule ``synthetic``: write the embedded procedural dataset in KeypointNet layout."""

from _common import dataset_root, run


def main(snakemake) -> None:
    from bt3d.synthetic import generate_dataset

    p = snakemake.params
    root = generate_dataset(
        dataset_root(snakemake.output.sample_order),
        categories=tuple(p.categories),
        shapes_per_category=p.shapes_per_category,
        seed=p.seed,
    )
    print(f"synthetic dataset written to {root}: {', '.join(p.categories)}")


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
