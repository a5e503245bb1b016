"""Rule ``keypoint_views``: a category's test shapes with predicted and true keypoints in 3D."""

from _common import expected_header, rebuild_on_error, run


def main(snakemake) -> None:
    from bt3d.casebook import category_labels, load_test_shapes, write_view_page

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
    write_view_page(shapes, labels, category, snakemake.output.page, snakemake.params.max_shapes)


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
