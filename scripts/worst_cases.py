"""Rule ``worst_cases``: a category's keypoints and shapes with the largest geodesic error."""

from _common import expected_header, rebuild_on_error, run


def main(snakemake) -> None:
    from bt3d.casebook import category_labels, load_test_shapes, write_worst_cases

    category = snakemake.wildcards.category
    shapes = load_test_shapes(
        snakemake.input.annotations,
        snakemake.input.predictions,
        snakemake.input.geodesics,
        snakemake.input.points,
        lambda kind, part: expected_header(snakemake, kind, part=part),
        rebuild_on_error,
    )
    labels = category_labels(snakemake.input.labels, category)
    outputs = {name: snakemake.output[name] for name in ("table", "picture", "page")}
    write_worst_cases(
        shapes, labels, category, snakemake.params.keypoints, snakemake.params.shapes, outputs
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
