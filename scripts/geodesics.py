"""Rule ``geodesics``: raw geodesic matrices of one part's point clouds.

Writes ``geodesic`` (S, N, N) float16 normalised by each shape's maximum, ``scale`` (S,)
float64 (that maximum; raw = geodesic * scale), ``model_ids`` (S,), ``labelled`` (S,) bool;
the header's ``skipped_shapes`` counts the category's annotated shapes left out for lack of
files (``dataset.missing_shapes: skip``) and ``sample_order`` names the file that ordered
the split. Each shape's files are checked against each other first (bt3d.consistency). With
``dataset.normalise`` the point clouds are divided by their mesh's bounding-box diagonal.
"""

from _common import dataset_root, expected_header, run, shape_paths


def main(snakemake) -> None:
    from bt3d.io import KeypointNetDataset
    from bt3d.selection import select_category
    from bt3d.stages import part_geodesics

    sel, geo = snakemake.params.selection, snakemake.params.geodesic
    category, part = snakemake.wildcards.category, snakemake.wildcards.part
    dataset = KeypointNetDataset(dataset_root(snakemake.input.annotations))
    selection = select_category(dataset, snakemake.input.sample_order, category, sel)
    part_geodesics(
        dataset.annotations(category),
        selection,
        part,
        sel["shards"],
        shape_paths(snakemake),
        geo,
        snakemake.output.geodesics,
        expected_header(snakemake, "geodesics", part=part),
        threads=max(1, snakemake.threads),
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
