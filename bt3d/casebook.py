"""A category's test predictions for the report: a rotatable 3D view and the worst cases.

:func:`load_test_shapes` reads what the workflow computed for a category's test shapes (the
annotations, every test shard's predictions and geodesics, the point clouds) through the
job readers of :mod:`bt3d.results`, and gives each shape's per-keypoint geodesic errors
(:func:`bt3d.metrics.keypoint_errors` on the normalised geodesic matrix, i.e. divided by
the shape's largest geodesic distance; ``distance`` is the same in the unit of the
evaluation thresholds). :func:`write_view_page` draws them with :mod:`bt3d.viewer`;
:func:`write_worst_cases` ranks them (:func:`bt3d.metrics.worst_keypoints`,
:func:`bt3d.metrics.worst_shapes`) into a CSV, a picture (:mod:`bt3d.plots`) and a small HTML
page holding both, which Snakemake's report shows.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bt3d.errors import DataError
from bt3d.results import (
    Provenance,
    part_of,
    prediction_header,
    read_geodesic_part,
    read_json_part,
)

# Largest HTML result Chromium shows inside snakemake's self-contained report, which embeds
# it as a base64 data: URL (Chromium's URL limit is 2 MiB; base64 takes 4 bytes per 3).
REPORT_EMBED_LIMIT = (2 * 2**20 - 256) * 3 // 4


@dataclass(frozen=True)
class ScoredShape:
    """One test shape with its prediction, ground truth and errors.

    Attributes:
        model_id: the shape's id.
        points: (N, 3) its point cloud as read from the ``.pcd``.
        pred_indices: (K,) predicted point indices; ``pred_ids`` (K,) their semantic ids.
        gt_indices: (M,) ground-truth point indices; ``gt_ids`` (M,) their semantic ids.
        gt_errors: (M,) normalised geodesic distance of each ground-truth keypoint to the
            prediction of its id (``inf``: no prediction of that id).
        pred_errors: (K,) the same seen from each prediction.
        scale: the shape's largest geodesic distance (raw = normalised * scale).
    """

    model_id: str
    points: np.ndarray
    pred_indices: np.ndarray
    pred_ids: np.ndarray
    gt_indices: np.ndarray
    gt_ids: np.ndarray
    gt_errors: np.ndarray
    pred_errors: np.ndarray
    scale: float


def load_test_shapes(
    annotations: str | Path,
    predictions: Sequence[str | Path],
    geodesics: Sequence[str | Path],
    point_clouds: Sequence[str | Path],
    provenance: Provenance,
) -> list[ScoredShape]:
    """Every predicted test shape of a category, in prediction order.

    Args:
        annotations: the category's KeypointNet annotation file.
        predictions: every test shard's ``predictions/<variant>/<cat>/<set>/shard-k.json``.
        geodesics: every test shard's ``geodesics/<cat>/shard-k.npz``.
        point_clouds: the test shapes' ``.pcd`` files (named ``<model id>.pcd``).
        provenance: the header fields each artifact must carry
            (:class:`bt3d.results.Provenance`); a bad artifact is deleted with what was
            computed from it, for a rebuild (:mod:`bt3d.results`).
    """
    from bt3d.io import load_points, read_annotations
    from bt3d.metrics import keypoint_errors

    truths = {a.model_id: a for a in read_annotations(annotations)}
    clouds = {Path(p).stem: Path(p) for p in point_clouds}
    matrices: dict[str, tuple[np.ndarray, float]] = {}
    for path in geodesics:
        part = read_geodesic_part(str(path), provenance.header("geodesics", part=part_of(path)))
        for model_id, matrix, scale in zip(
            part["model_ids"], part["geodesic"], part["scale"], strict=True
        ):
            matrices[model_id] = (matrix, float(scale))
    shapes = []
    for path in predictions:
        records = read_json_part(str(path), prediction_header(provenance, path))
        for record in records["predictions"]:
            model_id = record["model_id"]
            lacking = [
                what
                for what, table in (
                    ("annotation", truths),
                    ("geodesics", matrices),
                    (".pcd", clouds),
                )
                if model_id not in table
            ]
            if lacking:
                raise DataError(f"{path}: test shape {model_id} has no {', '.join(lacking)}")
            truth, (matrix, scale) = truths[model_id], matrices[model_id]
            geodesic = matrix.astype(np.float64)
            pred = (
                np.asarray(record["indices"], np.int64),
                np.asarray(record["semantic_ids"], np.int64),
            )
            gt = truth.point_indices, truth.semantic_ids
            try:
                errors = (
                    keypoint_errors(*pred, *gt, geodesic),
                    keypoint_errors(*gt, *pred, geodesic),
                )
            except DataError as exc:
                raise DataError(f"{path}: test shape {model_id}: {exc}") from exc
            shapes.append(
                ScoredShape(
                    model_id=model_id,
                    points=load_points(clouds[model_id], n_points=len(geodesic)),
                    pred_indices=pred[0],
                    pred_ids=pred[1],
                    gt_indices=np.asarray(gt[0], np.int64),
                    gt_ids=np.asarray(gt[1], np.int64),
                    gt_errors=errors[0],
                    pred_errors=errors[1],
                    scale=scale,
                )
            )
    if not shapes:
        raise DataError(f"{annotations}: no test shape was predicted")
    return shapes


def category_labels(label_files: Sequence[str | Path], category: str) -> dict[int, str]:
    """Semantic id -> text label of ``category`` from the dataset's ``keypoint_labels.json``
    (``label_files``: that file, or nothing when the dataset has none)."""
    from bt3d.io import category_of, read_keypoint_labels

    labels: dict[int, str] = {}
    for path in label_files:
        labels.update(read_keypoint_labels(path).get(category_of(category), {}))
    return labels


def label_of(labels: Mapping[int, str], semantic_id: int) -> str:
    """The keypoint's text label, or ``id <n>`` when the dataset has none for it."""
    return labels.get(int(semantic_id), f"id {int(semantic_id)}")


def _error_text(error: float, scale: float, missing: str) -> str:
    if not np.isfinite(error):
        return missing
    return f"geodesic error {error:.4f} (distance {error * scale:.4f})"


def shape_view(shape: ScoredShape, labels: Mapping[int, str], colours: Mapping[str, str]):
    """A :class:`bt3d.viewer.ShapeView` of a test shape: ground truth as labelled circles,
    predictions as diamonds, a line from each prediction to the ground truth of its id, the
    error of each keypoint on hover."""
    from bt3d.viewer import KeypointLayer, ShapeView

    gt_names = [label_of(labels, s) for s in shape.gt_ids]
    pred_names = [label_of(labels, s) for s in shape.pred_ids]
    pairs = [
        (p, g)
        for p, ps in zip(shape.pred_indices, shape.pred_ids, strict=True)
        for g, gs in zip(shape.gt_indices, shape.gt_ids, strict=True)
        if ps == gs
    ]
    finite = shape.gt_errors[np.isfinite(shape.gt_errors)]
    mean = f"mean error {finite.mean():.4f}" if len(finite) else "no matched keypoint"
    return ShapeView(
        title=f"{shape.model_id} ({mean})",
        points=shape.points,
        keypoints=shape.points[shape.gt_indices],
        names=gt_names,
        colours=[colours[n] for n in gt_names],
        label="ground truth (circle)",
        details=[_error_text(e, shape.scale, "no prediction of this id") for e in shape.gt_errors],
        layers=[
            KeypointLayer(
                label="predicted (diamond)",
                keypoints=shape.points[shape.pred_indices],
                names=pred_names,
                colours=[colours[n] for n in pred_names],
                details=[
                    _error_text(e, shape.scale, "no ground truth of this id")
                    for e in shape.pred_errors
                ],
            )
        ],
        links=np.array([[shape.points[p], shape.points[g]] for p, g in pairs]).reshape(-1, 2, 3),
    )


def write_view_page(
    shapes: Sequence[ScoredShape],
    labels: Mapping[int, str],
    category: str,
    path: str | Path,
    max_shapes: int | None = None,
) -> None:
    """A self-contained HTML page (plotly.js inline) with one rotatable view per test shape,
    worst first (mean keypoint error), ``max_shapes`` of them (None: all)."""
    from bt3d.atomic import write_bytes_atomic
    from bt3d.metrics import worst_shapes
    from bt3d.viewer import keypoint_page, name_colours

    ranked = worst_shapes([s.model_id for s in shapes], [s.gt_errors for s in shapes], len(shapes))
    order = [m for m, _ in ranked] + sorted({s.model_id for s in shapes} - {m for m, _ in ranked})
    by_id = {s.model_id: s for s in shapes}
    chosen = [by_id[m] for m in order[:max_shapes]]
    ids = sorted({int(i) for s in shapes for i in (*s.gt_ids, *s.pred_ids)})
    colours = name_colours([label_of(labels, i) for i in ids])
    title = f"{category}: {len(chosen)} of {len(shapes)} test shapes, worst first"
    views = [shape_view(s, labels, colours) for s in chosen]
    page = keypoint_page(views, title=title, compact=True, up="y").encode("utf-8")
    write_bytes_atomic(Path(path), page)
    print(f"{category}: {len(chosen)} test shapes in {path} ({len(page) / 2**20:.2f} MiB)")
    if len(page) > REPORT_EMBED_LIMIT:
        print(
            f"WARNING: {path} is {len(page) / 2**20:.2f} MiB: Chromium shows no HTML result "
            f"over {REPORT_EMBED_LIMIT / 2**20:.2f} MiB inside snakemake's report (a data: URL "
            "of at most 2 MiB); open the file itself, or lower report.view_shapes"
        )


def worst_case_table(shapes: Sequence[ScoredShape], labels: Mapping[int, str], count: int):
    """The ``count`` keypoints with the largest error: ``rank, model_id, semantic_id, label,
    error`` (normalised geodesic), ``distance`` (in the evaluation thresholds' unit)."""
    from bt3d.metrics import worst_keypoints

    table = worst_keypoints(
        [s.model_id for s in shapes],
        [s.gt_ids for s in shapes],
        [s.gt_errors for s in shapes],
        count,
    )
    scales = {s.model_id: s.scale for s in shapes}
    table.insert(3, "label", [label_of(labels, s) for s in table["semantic_id"]])
    table["distance"] = table["error"] * table["model_id"].map(scales)
    return table


def write_worst_cases(
    shapes: Sequence[ScoredShape],
    labels: Mapping[int, str],
    category: str,
    keypoints: int,
    pictured: int,
    outputs: Mapping[str, str | Path],
) -> None:
    """Write ``outputs["table"]`` (CSV of :func:`worst_case_table`), ``outputs["picture"]``
    (PNG: the ``pictured`` shapes with the largest mean error, one row each) and
    ``outputs["page"]`` (HTML holding both)."""
    from bt3d.atomic import write_bytes_atomic
    from bt3d.metrics import worst_shapes
    from bt3d.plots import plot_keypoint_rows, save_figure

    table = worst_case_table(shapes, labels, keypoints)
    write_bytes_atomic(Path(outputs["table"]), table.to_csv(index=False).encode())
    by_id = {s.model_id: s for s in shapes}
    ranked = worst_shapes(list(by_id), [s.gt_errors for s in by_id.values()], pictured)
    if not ranked:
        raise DataError(f"{category}: no test keypoint has a prediction of its semantic id")
    rows = [
        {
            "points": by_id[m].points,
            "pred_indices": by_id[m].pred_indices,
            "gt_indices": by_id[m].gt_indices,
            "pred_ids": by_id[m].pred_ids,
            "gt_ids": by_id[m].gt_ids,
            "title": f"{category} {m}: mean geodesic error {mean:.4f}",
        }
        for m, mean in ranked
    ]
    save_figure(plot_keypoint_rows(rows), outputs["picture"])
    picture = base64.b64encode(Path(outputs["picture"]).read_bytes()).decode("ascii")
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(category)}: worst cases</title></head><body>"
        f"<h2>{html.escape(category)}: the {len(table)} keypoints with the largest geodesic "
        "error</h2>"
        + table.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0)
        + f"<h2>The {len(rows)} test shapes with the largest mean error</h2>"
        "<p>ground truth: circles; predictions: crosses; coloured by semantic id</p>"
        f'<img alt="worst shapes of {html.escape(category)}" style="max-width:100%" '
        f'src="data:image/png;base64,{picture}"></body></html>\n'
    )
    write_bytes_atomic(Path(outputs["page"]), page.encode("utf-8"))


__all__ = [
    "ScoredShape",
    "category_labels",
    "label_of",
    "load_test_shapes",
    "shape_view",
    "worst_case_table",
    "write_view_page",
    "write_worst_cases",
]
