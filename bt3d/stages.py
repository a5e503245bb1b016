"""The workflow's per-part stages, as library calls that the rules' scripts make.

A part is ``shots`` (the labelled shapes of a category) or ``shard-k`` (every ``shards``-th
test shape), see :mod:`bt3d.selection`. Each stage reads the shapes' files, checks that they
agree with each other, and writes one artifact through :mod:`bt3d.cache`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bt3d.cache import encode_geodesic, save_arrays
from bt3d.consistency import check_annotation_points, check_points_on_mesh
from bt3d.errors import DataError
from bt3d.geodesic import geodesic_matrix
from bt3d.integrity import describe_missing
from bt3d.io import load_mesh, load_points, validate_annotation
from bt3d.selection import MAX_LISTED, CategorySelection
from bt3d.structures import Mesh, ShapeAnnotation

ShapePaths = Sequence[tuple[str, str]]  # (point cloud, mesh) per shape


def check_part_files(model_ids: Sequence[str], files: ShapePaths) -> None:
    """DataError unless ``files`` are the point cloud and mesh of each of ``model_ids``, in
    order (the job's inputs and the selection must agree)."""
    stems = [(Path(pcd).stem, Path(ply).stem) for pcd, ply in files]
    if stems != [(m, m) for m in model_ids]:
        raise DataError(
            f"the job's shape files {[Path(p).name for p, _ in files][:3]} are not those of "
            f"its shapes {list(model_ids)[:3]}; rerun so that Snakemake plans the part again"
        )


def load_checked_shape(
    annotation: ShapeAnnotation, files: tuple[str, str], tolerance: float
) -> tuple[Mesh, np.ndarray]:
    """A shape's mesh and (N, 3) points after checking that its files agree: the points lie
    on the mesh, and the annotation's point indices refer to these points."""
    pcd, ply = files
    points, mesh = load_points(pcd), load_mesh(ply)
    validate_annotation(annotation, len(points))
    check_points_on_mesh(mesh, points, pcd, tolerance)
    check_annotation_points(annotation, points, pcd, tolerance)
    return mesh, points


def report_selection(selection: CategorySelection) -> None:
    """Print the WARNINGs a selection carries (skipped shapes, annotation-order split)."""
    if selection.order_file.endswith(".json"):
        print(
            f"WARNING: {selection.category}: shots and test shapes follow the record order of "
            f"{selection.order_file}, not the paper's benchmark_indices.csv "
            "(dataset.sample_order)"
        )
    if selection.missing:
        print(
            f"WARNING: {selection.category}: skipping {selection.skipped} annotated shapes "
            f"without their files (dataset.missing_shapes: skip): "
            f"{describe_missing(selection.missing, MAX_LISTED)}"
        )


def part_geodesics(
    annotations: Mapping[str, ShapeAnnotation],
    selection: CategorySelection,
    part: str,
    shards: int,
    files: ShapePaths,
    settings: Mapping[str, Any],
    output: str,
    header: Mapping[str, Any],
    threads: int = 1,
) -> None:
    """Geodesic matrices of one part's shapes, written to ``output``.

    Args:
        annotations: model id -> annotation of the category.
        selection: the category's split; ``part`` of it is computed.
        files: (point cloud, mesh) of each of the part's shapes.
        settings: ``knn``, ``unreachable``, ``normalise`` (divide by the mesh's bounding-box
            diagonal first) and ``surface_tolerance`` (see bt3d.consistency).
        header: fields for the artifact's header (kind, category, config hash, part).
        threads: for the all-pairs shortest paths (:func:`bt3d.geodesic.geodesic_matrix`).

    The artifact holds ``geodesic`` (S, N, N) float16 normalised by each shape's maximum,
    ``scale`` (S,) float64, ``model_ids`` (S,) and ``labelled`` (S,) bool.
    """
    from bt3d.pipeline import unit_box

    report_selection(selection)
    model_ids = selection.part(part, shards)
    check_part_files(model_ids, files)
    encoded, scales = [], []
    for model_id, shape_files in zip(model_ids, files, strict=True):
        mesh, points = load_checked_shape(
            annotations[model_id], shape_files, settings["surface_tolerance"]
        )
        if settings["normalise"]:  # geodesics in units of the mesh's bounding-box diagonal
            points = unit_box(mesh, points)[1]
        raw = geodesic_matrix(
            points,
            k=settings["knn"],
            unreachable=settings["unreachable"],
            source=model_id,
            threads=threads,
        )
        matrix, scale = encode_geodesic(raw)
        encoded.append(matrix)
        scales.append(scale)
        print(f"{selection.category}/{model_id}: geodesic diameter {scale:.4f}")
    n = encoded[0].shape[0] if encoded else 0
    labelled = set(selection.labelled)
    save_arrays(
        output,
        {
            "geodesic": np.stack(encoded) if encoded else np.zeros((0, n, n), np.float16),
            "scale": np.asarray(scales, dtype=np.float64),
            "model_ids": np.asarray(model_ids, dtype=str),
            "labelled": np.asarray([m in labelled for m in model_ids], dtype=bool),
        },
        {
            **settings,
            **header,
            "model_ids": model_ids,
            "skipped_shapes": selection.skipped,
            "sample_order": selection.order_file,
        },
    )


def part_features(
    model_ids: Sequence[str],
    files: ShapePaths,
    geodesic: np.ndarray,
    scale: np.ndarray,
    backbone: Any,
    settings: Mapping[str, Any],
    device: Any,
    output: str,
    header: Mapping[str, Any],
) -> None:
    """Back-projected, geodesically smoothed features of one part's shapes, to ``output``.

    Args:
        model_ids: the part's shapes, in the order of its geodesics artifact.
        files: (point cloud, mesh) of each.
        geodesic: (S, N, N) normalised geodesics of the part; ``scale`` (S,) their maxima.
        backbone: from :func:`bt3d.backbones.get_backbone`.
        settings: the ``features`` params: ``render``, ``backbone`` (batch_size, precision),
            ``sampling``, ``normalise``, ``sigma``, ``visibility_layers``.

    The artifact holds ``features`` (S, N, C) float32, ``counts`` (S, N) views that saw each
    point, and ``model_ids`` (S,); for the labelled shapes (``header["part"] == "shots"``)
    also ``unsmoothed`` (S, N, C) float32, for ``features.labelled: annotated_xyz``.
    """
    from bt3d.pipeline import extract_shape_features

    check_part_files(model_ids, files)
    render, bb = settings["render"], settings["backbone"]
    features, counts, unsmoothed = [], [], []
    for i, (model_id, (pcd, ply)) in enumerate(zip(model_ids, files, strict=True)):
        start = time.perf_counter()
        shape = extract_shape_features(
            load_mesh(ply),
            load_points(pcd),
            backbone,
            n_azimuth=render["n_azimuth"],
            n_polar=render["n_polar"],
            distance=render["distance"],
            fov=render["fov"],
            image_size=render["image_size"],
            render_backend=render["backend"],
            textured=render["textured"],
            sampling=settings["sampling"],
            normalise=settings["normalise"],
            sigma=settings["sigma"],
            batch_size=bb["batch_size"],
            precision=bb["precision"],
            tokens=bb["tokens"],
            visibility_layers=settings["visibility_layers"],
            device=device,
            geodesic=geodesic[i].astype(np.float64) * scale[i],
        )
        features.append(shape.features.astype(np.float32))
        unsmoothed.append(shape.unsmoothed.astype(np.float32))
        counts.append(shape.counts.astype(np.int64))
        print(
            f"{model_id}: {shape.features.shape} features, {shape.seen_fraction:.1%} of "
            f"points seen, {time.perf_counter() - start:.1f} s"
        )
    dim = features[0].shape[1] if features else 0
    arrays = {
        "features": np.stack(features) if features else np.zeros((0, 0, dim), np.float32),
        "counts": np.stack(counts) if counts else np.zeros((0, 0), np.int64),
        "model_ids": np.asarray(model_ids, dtype=str),
    }
    if header.get("part") == "shots":
        arrays["unsmoothed"] = np.stack(unsmoothed) if unsmoothed else arrays["features"]
    save_arrays(
        output,
        arrays,
        {**settings, **header, "backbone": bb["name"], "model_ids": list(model_ids)},
    )
