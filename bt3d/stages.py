"""The stages of the method as library calls: one path for the workflow and the ``bt3d`` CLI.

Per shape (both paths): :func:`bt3d.pipeline.shape_geodesic` ->
:func:`bt3d.pipeline.extract_shape_features` -> :func:`annotated_shape` (labelled shapes, for
:func:`bt3d.fewshot.build_prototypes`) -> :func:`predict_shape`. The workflow's rules run them
per part of a category (``shots`` = the labelled shapes of every shot set, ``shard-k`` =
every ``shards``-th test shape, see :mod:`bt3d.selection`) and shot set:
:func:`part_geodesics`, :func:`part_features`, :func:`category_prototypes`,
:func:`part_predictions`, each reading its inputs through :mod:`bt3d.results` and writing one
artifact. Geodesics are used as they are stored (float16, :func:`bt3d.cache.encode_geodesic`)
by every later stage of both paths, so identical settings give identical artifacts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bt3d.cache import (
    decode_geodesic,
    encode_geodesic,
    make_header,
    save_arrays,
    save_json_atomic,
)
from bt3d.consistency import check_points
from bt3d.errors import DataError
from bt3d.fewshot import KeypointPrototypes, LabelledShape, build_prototypes, labelled_shape
from bt3d.integrity import describe_missing
from bt3d.io import KeypointNetDataset, load_mesh, load_points, validate_annotation
from bt3d.pipeline import extract_shape_features, shape_geodesic
from bt3d.results import (
    Provenance,
    read_feature_part,
    read_geodesic_part,
    rebuild_on_error,
)
from bt3d.selection import MAX_LISTED, CategorySelection, select_category, shot_set_index
from bt3d.settings import (
    FeatureSettings,
    GeodesicSettings,
    OptimiserSettings,
    PrototypeSettings,
)
from bt3d.structures import Mesh, ShapeAnnotation

ShapePaths = Sequence[tuple[str, str]]  # (point cloud, mesh) per shape


# ----------------------------------------------------------------------------- per shape


def annotated_shape(
    annotation: ShapeAnnotation,
    features: np.ndarray,
    geodesic: np.ndarray,
    settings: PrototypeSettings,
    unsmoothed: np.ndarray | None,
    counts: np.ndarray,
) -> LabelledShape:
    """A labelled shape of the few-shot model (:func:`bt3d.fewshot.labelled_shape`): its (N, C)
    features (``unsmoothed`` (N, C) and ``counts`` (N,) for ``annotated_xyz``), (N, N)
    stored normalised geodesics and the annotation's keypoints."""
    return labelled_shape(
        features.astype(np.float32),
        geodesic.astype(np.float64),
        annotation.semantic_ids,
        annotation.point_indices,
        annotation.model_id,
        labelled=settings.labelled,
        unsmoothed=unsmoothed,
        counts=counts,
        sigma=settings.sigma,
    )


def predict_shape(
    model_id: str,
    features: np.ndarray,
    geodesic: np.ndarray,
    prototypes: KeypointPrototypes,
    settings: OptimiserSettings,
    device: Any,
) -> dict[str, Any]:
    """One prediction record: ``model_id``, ``semantic_ids``, ``indices`` (into the shape's
    points), ``confidences``, ``steps_run``, ``final_loss``, from (N, C) features and (N, N)
    stored normalised geodesics."""
    from bt3d.optimize import optimise_keypoints

    pred = optimise_keypoints(
        features.astype(np.float32),
        geodesic.astype(np.float64),
        prototypes,
        device=device,
        **settings.optimise_options(),
    )
    print(f"{model_id}: {pred.steps_run} steps, loss {pred.final_loss:.4f}")
    return {
        "model_id": model_id,
        "semantic_ids": pred.semantic_ids,
        "indices": pred.indices,
        "confidences": pred.confidences,
        "steps_run": pred.steps_run,
        "final_loss": pred.final_loss,
    }


def save_predictions(
    path: str | Path,
    header: Mapping[str, Any],
    prototypes: KeypointPrototypes,
    settings: OptimiserSettings,
    records: Sequence[Mapping[str, Any]],
) -> None:
    """The predictions artifact (one layout for the workflow and ``bt3d predict``)."""
    save_json_atomic(
        path,
        {
            "header": make_header(
                **header, seed=settings.seed, model_ids=[r["model_id"] for r in records]
            ),
            "optimiser": settings.to_dict(),
            "known_semantic_ids": [int(k) for k in prototypes.semantic_ids],
            "predictions": list(records),
        },
    )


# ----------------------------------------------------------------------------- per part


def check_part_files(model_ids: Sequence[str], files: ShapePaths) -> None:
    """DataError unless ``files`` are the point cloud and mesh of each of ``model_ids``, in
    order (the job's inputs and the selection must agree)."""
    stems = [(Path(pcd).stem, Path(ply).stem) for pcd, ply in files]
    if stems != [(m, m) for m in model_ids]:
        raise DataError(
            f"the job's shape files {[Path(p).name for p, _ in files][:3]} are not those of "
            f"its shapes {list(model_ids)[:3]}; rerun so that Snakemake plans the part again"
        )


def pairs(files: Sequence[str]) -> list[tuple[str, str]]:
    """``(point cloud, mesh)`` per shape from a job's ``shapes`` input (``shape_files`` in
    workflow/rules/common.smk lists .pcd then .ply per shape)."""
    files = list(files)
    return list(zip(files[0::2], files[1::2], strict=True))


def load_checked_shape(
    annotation: ShapeAnnotation, files: tuple[str, str], tolerance: float
) -> tuple[Mesh, np.ndarray]:
    """A shape's mesh and (N, 3) points after checking that its files agree: the points lie
    on the mesh, and the annotation's point indices refer to these points."""
    pcd, ply = files
    points, mesh = load_points(pcd), load_mesh(ply)
    validate_annotation(annotation, len(points))
    check_points(mesh, points, pcd, tolerance)
    check_points(annotation, points, pcd, tolerance)
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
    dataset: KeypointNetDataset,
    order_file: str,
    selection_settings: Mapping[str, Any],
    part: str,
    files: Sequence[str],
    settings: GeodesicSettings,
    output: str,
    provenance: Provenance,
    threads: int = 1,
) -> None:
    """Geodesic matrices of one part's shapes, written to ``output``.

    Args:
        dataset, order_file, selection_settings: the category's split
            (:func:`bt3d.selection.select_category`); ``part`` of it is computed.
        files: the job's ``shapes`` input (:func:`pairs`).
        threads: for the all-pairs shortest paths (:func:`bt3d.geodesic.geodesic_matrix`).

    The artifact holds ``geodesic`` (S, N, N) float16 normalised by each shape's maximum,
    ``scale`` (S,) float64, ``model_ids`` (S,) and ``labelled`` (S,) bool.
    """
    selection = select_category(dataset, order_file, provenance.category, selection_settings)
    annotations = dataset.annotations(provenance.category)
    report_selection(selection)
    model_ids = selection.part(part, selection_settings["shards"])
    shapes = pairs(files)
    check_part_files(model_ids, shapes)
    encoded, scales = [], []
    for model_id, shape_files in zip(model_ids, shapes, strict=True):
        mesh, points = load_checked_shape(
            annotations[model_id], shape_files, settings.surface_tolerance
        )
        matrix, scale = encode_geodesic(shape_geodesic(mesh, points, settings, model_id, threads))
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
            **settings.to_dict(),
            **provenance.header("geodesics", part=part),
            "model_ids": model_ids,
            "skipped_shapes": selection.skipped,
            "sample_order": selection.order_file,
        },
    )


def part_features(
    geodesics: str,
    files: Sequence[str],
    settings: FeatureSettings,
    device_name: str,
    threads: int,
    output: str,
    provenance: Provenance,
    part: str,
) -> None:
    """Back-projected, geodesically smoothed features of one part's shapes, to ``output``,
    in the order of the part's geodesics artifact ``geodesics`` (whose matrices are reused).

    The artifact holds ``features`` (S, N, C) float32, ``counts`` (S, N) views that saw each
    point, and ``model_ids`` (S,); the ``shots`` part also ``unsmoothed`` (S, N, C) float32,
    the view averages (for ``features.labelled: annotated_xyz``).
    """
    import torch

    from bt3d.backbones import get_backbone
    from bt3d.device import memory_report, resolve_device

    torch.set_num_threads(max(1, threads))
    device = resolve_device(device_name)
    geo = read_geodesic_part(geodesics, provenance.header("geodesics", part=part))
    model_ids = geo["model_ids"]
    shapes = pairs(files)
    check_part_files(model_ids, shapes)
    bb = settings.backbone
    loading = time.perf_counter()
    backbone = get_backbone(bb.name, device=device, checkpoint=bb.checkpoint, layer=bb.layer)
    print(f"backbone {bb.name} loaded in {time.perf_counter() - loading:.1f} s; "
          f"memory: {memory_report(device)}")  # fmt: skip
    features, counts, unsmoothed = [], [], []
    for i, (model_id, (pcd, ply)) in enumerate(zip(model_ids, shapes, strict=True)):
        start = time.perf_counter()
        raw = decode_geodesic(geo["geodesic"][i], geo["scale"][i])
        shape = extract_shape_features(
            load_mesh(ply), load_points(pcd), backbone, settings, raw, device
        )
        features.append(shape.features.astype(np.float32))
        counts.append(shape.counts.astype(np.int64))
        if part == "shots":  # the labelled shapes only: for features.labelled: annotated_xyz
            unsmoothed.append(shape.unsmoothed.astype(np.float32))
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
    if part == "shots":
        arrays["unsmoothed"] = np.stack(unsmoothed) if unsmoothed else arrays["features"]
    save_arrays(
        output,
        arrays,
        {
            **settings.to_dict(),
            **provenance.header("features", part=part),
            "backbone": bb.name,
            "model_ids": list(model_ids),
        },
    )
    print(f"after {len(model_ids)} shapes, peak memory: {memory_report(device)}")


def category_prototypes(
    dataset: KeypointNetDataset,
    features: str,
    geodesics: str,
    settings: PrototypeSettings,
    output: str,
    provenance: Provenance,
    backbone: Mapping[str, Any],
    shot_set: str = "set-0",
) -> None:
    """The few-shot keypoint model of a category from the labelled shapes of ``shot_set``
    (``set-k``: block k of the ``shots`` part's features and geodesics, ``shots`` shapes
    each), written to ``output``; ``backbone`` (name, layer) is recorded for
    ``bt3d predict``, which checks users' features against it."""
    annotations = dataset.annotations(provenance.category)
    geo = read_geodesic_part(geodesics, provenance.header("geodesics", part="shots"))
    model_ids = geo["model_ids"]
    feat = read_feature_part(
        features, provenance.header("features", part="shots"), geodesics, model_ids
    )
    shots = provenance.params["prototypes"]["selection"]["shots"]
    k = shot_set_index(shot_set)
    block = range(k * shots, min((k + 1) * shots, len(model_ids)))
    if len(block) != shots:
        raise DataError(
            f"{geodesics}: {len(model_ids)} labelled shapes hold no {shot_set} of {shots} "
            "shapes; rerun so that Snakemake plans the shots part again"
        )
    labelled = [
        annotated_shape(
            annotations[model_ids[i]],
            feat["features"][i],
            geo["geodesic"][i],
            settings,
            feat["unsmoothed"][i] if "unsmoothed" in feat else None,
            feat["counts"][i],
        )  # fmt: skip
        for i in block
    ]
    prototypes = build_prototypes(labelled, reduction=settings.reduction)
    shot_ids = [model_ids[i] for i in block]
    header = provenance.header(
        "prototypes", shot_ids=shot_ids, shot_set=shot_set, backbone=backbone["name"],
        layer=backbone["layer"],
    )  # fmt: skip
    prototypes.save(output, header)
    print(
        f"{provenance.category} {shot_set}: {prototypes.num_keypoints} keypoints from "
        f"{len(labelled)} labelled shapes ({', '.join(shot_ids)})"
    )


def part_predictions(
    features: str,
    geodesics: str,
    prototypes_path: str,
    settings: OptimiserSettings,
    device_name: str,
    output: str,
    provenance: Provenance,
    part: str,
    shot_set: str = "set-0",
) -> None:
    """Keypoint predictions with confidences for one part's shapes by the model of
    ``shot_set``, to ``output``; the shapes that model was built from are left out (with
    several shot sets the ``shots`` part holds them beside the other sets' shapes)."""
    from bt3d.device import resolve_device

    device = resolve_device(device_name)
    geo = read_geodesic_part(geodesics, provenance.header("geodesics", part=part))
    model_ids = geo["model_ids"]
    feat = read_feature_part(
        features, provenance.header("features", part=part), geodesics, model_ids
    )
    with rebuild_on_error(prototypes_path):
        prototypes = KeypointPrototypes.load(
            prototypes_path, provenance.header("prototypes", shot_set=shot_set)
        )
    own = set(prototypes.shot_ids)
    records = [
        predict_shape(m, feat["features"][i], geo["geodesic"][i], prototypes, settings, device)
        for i, m in enumerate(model_ids)
        if m not in own
    ]
    header = provenance.header("predictions", part=part, shot_set=shot_set)
    save_predictions(output, header, prototypes, settings, records)
