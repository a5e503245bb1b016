"""Rule ``plot_keypoints``: predicted vs ground-truth keypoints on a category's first test shape."""

from _common import dataset, run


def main(snakemake) -> None:
    from bt3d.errors import DataError
    from bt3d.plots import plot_keypoints, save_figure
    from bt3d.results import read_json_part

    category = snakemake.wildcards.category
    data = dataset(snakemake)
    predictions = []
    for path in snakemake.input.predictions:
        predictions += read_json_part(path)["predictions"]
    if not predictions:
        raise DataError(f"{category}: no predictions to draw")
    pred = min(predictions, key=lambda p: p["model_id"])
    truth = data.annotations(category)[pred["model_id"]]
    fig = plot_keypoints(
        data.load_points(category, pred["model_id"]),
        pred["indices"],
        truth.point_indices,
        pred["semantic_ids"],
        truth.semantic_ids,
        title=f"{category} {pred['model_id']}: predicted (x) vs ground truth (o)",
    )
    save_figure(fig, snakemake.output.picture)


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
