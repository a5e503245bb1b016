"""Rule ``geodesics``: raw geodesic matrices of one shard's point clouds.

Writes ``geodesic`` (S, N, N) float16 normalised by each shape's maximum, ``scale`` (S,)
float64 (that maximum; raw = geodesic * scale), ``model_ids`` (S,), ``labelled`` (S,) bool;
the header's ``skipped_shapes`` counts the category's annotated shapes left out for lack of
files (``dataset.missing_shapes: skip``) and ``sample_order`` names the file that ordered
the split. With ``dataset.normalise`` the point clouds are first divided by their mesh's
bounding-box diagonal (KeypointNet's unit scale).
"""

from _common import (
    check_files,
    dataset_root,
    expected_header,
    run,
    select_shard,
)


def main(snakemake) -> None:
    import numpy as np

    from bt3d.cache import encode_geodesic, save_arrays
    from bt3d.geodesic import geodesic_matrix
    from bt3d.io import KeypointNetDataset, validate_annotation
    from bt3d.pipeline import unit_box

    sel, geo = snakemake.params.selection, snakemake.params.geodesic
    category, shard = snakemake.wildcards.category, int(snakemake.wildcards.shard)
    dataset = KeypointNetDataset(dataset_root(snakemake.input.annotations))
    skipped = check_files(dataset, category, sel.get("missing_shapes", "error"))
    order = snakemake.input.sample_order
    if order.endswith(".json"):
        print(
            f"WARNING: {category}: shots and test shapes follow the record order of {order}, "
            "not the paper's benchmark_indices.csv (dataset.sample_order)"
        )
    labelled, test = select_shard(dataset, order, category, sel, shard)
    model_ids = labelled + test
    annotations = dataset.annotations(category)
    encoded, scales = [], []
    for model_id in model_ids:
        points = dataset.load_points(category, model_id)
        validate_annotation(annotations[model_id], len(points))
        if geo.get("normalise", False):  # geodesics in units of the mesh's bounding-box diagonal
            points = unit_box(dataset.load_mesh(category, model_id), points)[1]
        raw = geodesic_matrix(
            points,
            k=geo["knn"],
            unreachable=geo["unreachable"],
            source=model_id,
            threads=max(1, snakemake.threads),
        )
        matrix, scale = encode_geodesic(raw)
        encoded.append(matrix)
        scales.append(scale)
        print(f"{category}/{model_id}: geodesic diameter {scale:.4f}")
    n = encoded[0].shape[0] if encoded else 0
    save_arrays(
        snakemake.output.geodesics,
        {
            "geodesic": np.stack(encoded) if encoded else np.zeros((0, n, n), np.float16),
            "scale": np.asarray(scales, dtype=np.float64),
            "model_ids": np.asarray(model_ids, dtype=str),
            "labelled": np.asarray([m in labelled for m in model_ids], dtype=bool),
        },
        {
            **geo,
            **expected_header(snakemake, "geodesics", shard=shard, model_ids=model_ids),
            "skipped_shapes": skipped,
            "sample_order": order,
        },
    )


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
