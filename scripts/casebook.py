"""Rules ``keypoint_views`` (a category's test shapes in 3D) and ``worst_cases`` (its largest
geodesic errors), both from the category's scored test shapes (bt3d.casebook)."""

from _common import provenance, run


def main(snakemake) -> None:
    from bt3d.casebook import category_labels, load_test_shapes, write_view_page, write_worst_cases

    category, i, p = snakemake.wildcards.category, snakemake.input, snakemake.params
    shapes = load_test_shapes(
        i.annotations, i.predictions, i.geodesics, i.points, provenance(snakemake)
    )
    labels = category_labels(i.labels, category)
    if snakemake.rule == "keypoint_views":
        write_view_page(shapes, labels, category, snakemake.output.page, p.max_shapes)
    else:
        outputs = {name: snakemake.output[name] for name in ("table", "picture", "page")}
        write_worst_cases(shapes, labels, category, p.keypoints, p.shapes, outputs)


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
