"""``bt3d detect``: few-shot keypoints on a folder of meshes from a few labelled meshes.

The job, on the library's own stages (no second implementation of the method)::

    check everything (labels files, meshes, OUT)  -> nothing written before this passes
    sample N points per mesh (seeded)              bt3d.pipeline.sample_surface
    snap the labels, name -> semantic id           bt3d.meshes, bt3d.labels
    features per distinct mesh, cached             bt3d.pipeline.extract_shape_features
    prototypes from the labelled meshes            bt3d.fewshot.build_prototypes
    keypoints on every mesh of the folder          bt3d.optimize.optimise_keypoints
    OUT/<stem>.csv/.pp/.json, OUT/index.html       bt3d.labels, bt3d.viewer

Features are cached in ``OUT/.cache/`` keyed by the mesh's geometry hash
(:func:`bt3d.meshes.content_hash`) and the feature settings, so a rerun with one more
labelled mesh computes only that mesh's features. Results are written into a temporary
folder beside OUT and moved in once all are written; a run that fails leaves OUT's results
as they were. ``OUT/detect.json`` records the settings, the name -> semantic id table, the
snapping distances of the labels, and per mesh its hash, point count and seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from bt3d.atomic import write_bytes_atomic
from bt3d.cache import config_hash, save_json_atomic
from bt3d.errors import CacheError, ConfigError, DataError
from bt3d.labels import LABEL_SUFFIXES, Landmarks, read_landmarks, write_csv, write_pp
from bt3d.meshes import (
    SnappedLandmarks,
    closest_surface,
    content_hash,
    diagonal,
    landmark_ids,
    load_mesh,
    mesh_suffixes,
    snap_landmarks,
)
from bt3d.settings import (
    FeatureSettings,
    GeodesicSettings,
    config_value,
    config_with,
    default_config,
    from_key,
)
from bt3d.structures import Mesh

MANIFEST = "detect.json"
CACHE_DIR = ".cache"
NO_CLASS_ID = "00000000"  # KeypointNet records need an 8-digit class id; shapes of no class


def _config_keys(settings: Any) -> dict[str, str]:
    """Field name -> config key of the :class:`DetectSettings` fields that have one."""
    return {f.name: f.metadata["config"] for f in fields(settings) if "config" in f.metadata}


@dataclass(frozen=True)
class DetectSettings:
    """Every setting of a detect run (the ``bt3d detect`` options' defaults live here; every
    field but ``class_id`` stands for a config key, which ``dataset.name: folder`` reads).

    Feature settings (``backbone`` .. ``knn``) and the sampling (``n_points``, ``seed``) key
    the feature cache; ``mode``, ``steps``, ``reduction`` configure prototypes and the
    optimiser; ``tolerance`` is the largest distance of a label from its mesh's surface as
    a fraction of the bounding-box diagonal.
    """

    backbone: str = from_key("backbone.name", "dinov2_vits14_offline")
    layer: str | None = from_key("backbone.layer", None)
    checkpoint: str | None = from_key("backbone.checkpoint", None)
    n_azimuth: int = from_key("render.n_azimuth", 12)
    n_polar: int = from_key("render.n_polar", 5)
    image_size: int = from_key("render.image_size", 224)
    sampling: str = from_key("features.sampling", "nearest")
    sigma: float = from_key("features.sigma", 0.01)
    render_backend: str = from_key("render.backend", "embree")
    knn: int = from_key("features.knn", 20)
    n_points: int = from_key("dataset.folder.n_points", 2048)
    seed: int = from_key("dataset.folder.seed", 0)
    batch_size: int = from_key("backbone.batch_size", 8)
    device: str = from_key("device", "auto")
    mode: str = from_key("optimiser.mode", "fast")
    steps: int | None = from_key("optimiser.steps", None)
    reduction: str = from_key("optimiser.prototype_reduction", "mean")
    tolerance: float = from_key("dataset.folder.tolerance", 0.02)
    class_id: str = NO_CLASS_ID

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DetectSettings:
        """From the workflow's config: every field but ``class_id`` from its config key."""
        return cls(**{name: config_value(config, key) for name, key in _config_keys(cls).items()})

    def as_config(self) -> dict[str, Any]:
        """The config's defaults with this run's settings at their keys; shapes are always
        rendered and measured at a unit diagonal (``dataset.normalise``)."""
        values = {key: getattr(self, name) for name, key in _config_keys(self).items()}
        return config_with(default_config(), {**values, "dataset.normalise": True})

    def feature_settings(self) -> FeatureSettings:
        """The features' settings: the config's defaults with this run's options."""
        return FeatureSettings.from_config(self.as_config())

    def geodesic_settings(self) -> GeodesicSettings:
        """The geodesics' settings: the config's defaults with this run's ``knn``."""
        return GeodesicSettings.from_config(self.as_config())

    def feature_key(self) -> dict[str, Any]:
        """The settings that determine a mesh's features (hashed into cache file names)."""
        return {
            "features": self.feature_settings().to_dict(),
            "geodesic": self.geodesic_settings().to_dict(),
            "n_points": self.n_points,
            "seed": self.seed,
        }


@dataclass
class Shape:
    """One mesh of the run: its file, geometry, sampled points and (later) features."""

    path: Path
    mesh: Mesh
    points: np.ndarray  # (N, 3) sampled on the surface, file frame
    mesh_hash: str
    features: Any = None  # bt3d.pipeline.ShapeFeatures once computed

    @property
    def stem(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class Labelled:
    """A labelled mesh: its shape, its landmarks and where they snapped."""

    shape: Shape
    landmarks: Landmarks
    snapped: SnappedLandmarks


@dataclass(frozen=True)
class Detected:
    """Predicted keypoints of one mesh of the folder.

    Attributes:
        names: (K,) keypoint names; xyz: (K, 3) in the mesh file's frame; point_indices:
        (K,) into the sampled points; confidences: (K,) the optimiser's weight of the chosen
        point (:class:`bt3d.optimize.Prediction`); faces/uvs: (K,), (K, 3) on the mesh.
    """

    shape: Shape
    names: list[str]
    semantic_ids: np.ndarray
    xyz: np.ndarray
    point_indices: np.ndarray
    confidences: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray


def list_meshes(folder: Path) -> list[Path]:
    """Mesh files directly in ``folder`` (by suffix, sorted); refuses none and clashing stems."""
    if not folder.is_dir():
        raise DataError(f"{folder}: --shapes folder does not exist")
    suffixes = mesh_suffixes()
    found = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
    )
    if not found:
        raise DataError(f"{folder}: no mesh files ({', '.join(suffixes)}) in the folder")
    stems: dict[str, Path] = {}
    for path in found:
        if path.stem in stems:
            raise DataError(
                f"{path}: same file stem as {stems[path.stem].name}; outputs are named by "
                "stem, rename one of them"
            )
        stems[path.stem] = path
    return found


def pair_arguments(values: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """``[MESH, LABELS, MESH, LABELS, ...]`` -> pairs; refuses an odd count or a bad order."""
    items = [Path(v) for v in values]
    if not items or len(items) % 2:
        raise ConfigError(
            f"--labelled takes pairs MESH LABELS, got {len(items)} path(s): "
            f"{' '.join(str(p) for p in items)}"
        )
    pairs = list(zip(items[::2], items[1::2], strict=True))
    for mesh_path, labels_path in pairs:
        if labels_path.suffix.lower() not in LABEL_SUFFIXES:
            raise ConfigError(
                f"{labels_path}: --labelled takes pairs MESH LABELS where LABELS is a .pp or "
                f".csv file (after mesh {mesh_path})"
            )
        if not labels_path.is_file():
            raise DataError(f"{labels_path}: labels file does not exist")
    return pairs


def check_output_folder(out: Path, shapes_dir: Path, inputs: Sequence[Path]) -> None:
    """OUT must be new, empty, or a previous ``bt3d detect`` output; never inside DIR."""
    out_r, dir_r = out.resolve(), shapes_dir.resolve()
    if out_r == dir_r or dir_r in out_r.parents:
        raise ConfigError(f"{out}: output folder is inside --shapes {shapes_dir}; choose another")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose a new output folder")
    for path in inputs:
        if out_r in path.resolve().parents:
            raise ConfigError(f"{out}: holds the input {path}; choose a new output folder")
    ours = {MANIFEST, CACHE_DIR}  # a run that failed after caching features leaves .cache
    if out.is_dir() and not (out / MANIFEST).is_file() and {p.name for p in out.iterdir()} - ours:
        raise ConfigError(
            f"{out}: folder exists, is not empty and was not written by bt3d detect (no "
            f"{MANIFEST}); choose a new output folder"
        )


def load_shape(path: Path, settings: DetectSettings) -> Shape:
    """One mesh file read (checked) with its ``n_points`` surface points sampled (``seed``)."""
    from bt3d.pipeline import sample_surface

    mesh = load_mesh(path)
    points = sample_surface(mesh, settings.n_points, settings.seed)
    return Shape(path, mesh, points, content_hash(mesh))


def _prepare_shape(path: Path, settings: DetectSettings, seen: dict[Path, Shape]) -> Shape:
    key = path.resolve()
    if key not in seen:
        seen[key] = load_shape(path, settings)
    return seen[key]


def label_shapes(
    pairs: Sequence[tuple[Path, Path]], settings: DetectSettings, seen: dict[Path, Shape]
) -> tuple[list[Labelled], list[str], dict[str, str]]:
    """Read every labels file, then load each labelled mesh and snap its labels.

    Returns:
        ``(labelled, names, seen_once)``: the labelled meshes, the sorted keypoint names
        (semantic id = position) and the names found on one labelled mesh only (-> file).
    """
    marks = [read_landmarks(labels) for _, labels in pairs]
    labelled_keys: dict[Path, Path] = {}
    labelled = []
    for (mesh_path, labels_path), landmarks in zip(pairs, marks, strict=True):
        shape = _prepare_shape(mesh_path, settings, seen)
        if mesh_path.resolve() in labelled_keys:
            raise ConfigError(
                f"{mesh_path}: labelled twice (with {labelled_keys[mesh_path.resolve()]} and "
                f"{labels_path}); give each labelled mesh once"
            )
        labelled_keys[mesh_path.resolve()] = labels_path
        snapped = snap_landmarks(shape.mesh, shape.points, landmarks, settings.tolerance)
        labelled.append(Labelled(shape, landmarks, snapped))
    names, seen_once = landmark_ids(marks)
    return labelled, names, seen_once


def prepare(
    pairs: Sequence[tuple[Path, Path]],
    shapes_dir: Path,
    out: Path,
    settings: DetectSettings,
    warn: Callable[[str], None],
) -> tuple[list[Labelled], list[Shape], list[str]]:
    """Every check of the run, before anything is written.

    Returns:
        ``(labelled, targets, names)``: labelled meshes with snapped landmarks, the meshes
        of the folder, and the sorted keypoint names (semantic id = position).
    """
    if not 0 < settings.tolerance:
        raise ConfigError(f"--tolerance must be > 0, got {settings.tolerance}")
    if not re.fullmatch(r"[0-9]{8}", settings.class_id):
        raise ConfigError(f"class id {settings.class_id!r} must be 8 digits")
    targets_paths = list_meshes(shapes_dir)
    check_output_folder(out, shapes_dir, [p for pair in pairs for p in pair])
    seen: dict[Path, Shape] = {}
    labelled, names, seen_once = label_shapes(pairs, settings, seen)
    targets = [_prepare_shape(p, settings, seen) for p in targets_paths]
    if seen_once:
        listed = ", ".join(f"{n!r} ({Path(src).name})" for n, src in seen_once.items())
        warn(
            f"keypoint names on one labelled shape only (a typo?): {listed}; each gets a "
            "prototype from that one shape"
        )
    return labelled, targets, names


def _cache_path(cache: Path, shape: Shape, settings_hash: str) -> Path:
    return cache / f"{shape.mesh_hash[:20]}-{settings_hash}.npz"


def feature_file(cache: Path, shape: Shape, settings: DetectSettings) -> Path:
    """Where :func:`compute_features` keeps ``shape``'s features under ``cache``."""
    return _cache_path(cache, shape, config_hash(settings.feature_key()))


def compute_features(
    shapes: Sequence[Shape], settings: DetectSettings, cache: Path, progress: bool = True
) -> tuple[int, int]:
    """Fill ``shape.features`` for every shape, from the cache or computed once per distinct
    mesh. The backbone is built only when something is missing (its errors come before any
    cache write). Returns ``(computed, cached)`` counts of distinct meshes."""
    import torch
    from tqdm import tqdm

    from bt3d.pipeline import (
        extract_shape_features,
        load_shape_features,
        save_shape_features,
        shape_geodesic,
    )

    key = settings.feature_key()
    feature_settings, geodesic = settings.feature_settings(), settings.geodesic_settings()
    threads = torch.get_num_threads()
    settings_hash = config_hash(key)
    distinct: dict[str, Shape] = {}
    for shape in shapes:
        distinct.setdefault(shape.mesh_hash, shape)
    missing: list[Shape] = []
    done: dict[str, Any] = {}
    for mesh_hash, shape in distinct.items():
        path = _cache_path(cache, shape, settings_hash)
        expected = {"config_hash": settings_hash, "mesh_hash": mesh_hash}
        try:
            done[mesh_hash] = load_shape_features(path, expected)[0]
        except CacheError:
            missing.append(shape)
    if missing:
        from bt3d.backbones import get_backbone

        backbone = get_backbone(
            settings.backbone, settings.device, settings.checkpoint, settings.layer
        )
        bar = tqdm(missing, desc="features", unit="shape", disable=not progress, file=sys.stderr)
        for shape in bar:
            bar.set_postfix_str(shape.path.name)
            source = str(shape.path)
            raw = shape_geodesic(shape.mesh, shape.points, geodesic, source, threads)
            features = extract_shape_features(
                shape.mesh, shape.points, backbone, feature_settings, raw, settings.device
            )
            header = {
                "config_hash": settings_hash,
                "mesh_hash": shape.mesh_hash,
                "backbone": settings.backbone,
                "layer": settings.layer,
                "model_id": shape.stem,
                "mesh": str(shape.path),
                "settings": key,
            }
            save_shape_features(_cache_path(cache, shape, settings_hash), features, header)
            done[shape.mesh_hash] = features
    for shape in shapes:
        shape.features = done[shape.mesh_hash]
    return len(missing), len(distinct) - len(missing)


def build_model(labelled: Sequence[Labelled], names: Sequence[str], settings: DetectSettings):
    """Keypoint prototypes (:func:`bt3d.fewshot.build_prototypes`) from the labelled meshes."""
    from bt3d.fewshot import LabelledShape, build_prototypes

    ids = {name: i for i, name in enumerate(names)}
    shots = [
        LabelledShape(
            features=item.shape.features.features.astype(np.float32),
            geodesic_normalised=item.shape.features.geodesic_normalised.astype(np.float64),
            semantic_ids=np.array([ids[n] for n in item.snapped.names], dtype=np.int64),
            point_indices=item.snapped.point_indices,
            model_id=item.shape.stem,
        )
        for item in labelled
    ]
    return build_prototypes(shots, reduction=settings.reduction)


def detect_shapes(
    shapes: Sequence[Shape], prototypes, names: Sequence[str], settings: DetectSettings
) -> list[Detected]:
    """Predict the prototypes' keypoints on every shape, as one batched problem
    (:func:`bt3d.optimize.optimise_batch`; shapes of equal point count share the steps)."""
    from bt3d.device import resolve_device
    from bt3d.optimize import optimise_batch

    predictions = optimise_batch(
        [(s.features.features, s.features.geodesic_normalised) for s in shapes],
        prototypes,
        mode=settings.mode,
        steps=settings.steps,
        seed=settings.seed,
        device=resolve_device(settings.device),
    )
    results = []
    for shape, prediction in zip(shapes, predictions, strict=True):
        xyz = shape.points[prediction.indices]
        _, _, faces, uvs = closest_surface(shape.mesh, xyz)
        results.append(
            Detected(
                shape=shape,
                names=[names[int(i)] for i in prediction.semantic_ids],
                semantic_ids=prediction.semantic_ids,
                xyz=xyz,
                point_indices=prediction.indices,
                confidences=np.asarray(prediction.confidences, dtype=np.float64),
                faces=faces,
                uvs=uvs,
            )
        )
    return results


def model_id(stem: str) -> str:
    """A KeypointNet model id from a file stem (characters outside [A-Za-z0-9_.-] -> _)."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", stem) or "_"


def keypointnet_record(result: Detected, class_id: str) -> dict[str, Any]:
    """One KeypointNet annotation record (readable by :func:`bt3d.io.read_annotations`),
    plus each keypoint's ``name`` and ``confidence``; ``point_index`` refers to the points
    sampled with the run's ``n_points`` and ``seed`` (recorded in ``detect.json``)."""
    keypoints = [
        {
            "xyz": result.xyz[k].tolist(),
            "semantic_id": int(result.semantic_ids[k]),
            "pcd_info": {"point_index": int(result.point_indices[k])},
            "mesh_info": {
                "face_index": int(result.faces[k]),
                "face_uv": result.uvs[k].tolist(),
            },
            "name": result.names[k],
            "confidence": float(result.confidences[k]),
        }
        for k in range(len(result.names))
    ]
    return {
        "class_id": class_id,
        "model_id": model_id(result.shape.stem),
        "keypoints": keypoints,
        "symmetries": {},
    }


def _views(labelled: Sequence[Labelled], results: Sequence[Detected], names: Sequence[str]):
    from bt3d.viewer import ShapeView, name_colours

    colours = name_colours(names)
    views = [
        ShapeView(
            title=f"{r.shape.path.name}",
            points=r.shape.points,
            keypoints=r.xyz,
            names=r.names,
            colours=[colours[n] for n in r.names],
            confidences=r.confidences,
        )
        for r in results
    ]
    views += [
        ShapeView(
            title=f"{item.shape.path.name} (labelled: {item.landmarks.source})",
            points=item.shape.points,
            keypoints=item.landmarks.xyz,
            names=list(item.landmarks.names),
            colours=[colours[n] for n in item.landmarks.names],
        )
        for item in labelled
    ]
    return views


def write_results(
    out: Path,
    labelled: Sequence[Labelled],
    results: Sequence[Detected],
    names: Sequence[str],
    settings: DetectSettings,
) -> list[str]:
    """Write every result into a temporary folder beside ``out``, then move them in.

    Results of an earlier run that this run does not produce are removed (listed in the
    earlier ``detect.json``). Returns the file names written.
    """
    from bt3d.cache import load_json
    from bt3d.viewer import keypoint_page

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        files: list[str] = []
        for r in results:
            stem = r.shape.stem
            write_csv(staging / f"{stem}.csv", r.names, r.xyz, r.confidences)
            write_pp(staging / f"{stem}.pp", r.names, r.xyz, r.shape.path.name, r.confidences)
            record = json.dumps([keypointnet_record(r, settings.class_id)], indent=1)
            write_bytes_atomic(staging / f"{stem}.json", (record + "\n").encode())  # KeypointNet
            files += [f"{stem}.csv", f"{stem}.pp", f"{stem}.json"]
        page = keypoint_page(_views(labelled, results, names), title="bt3d detect")
        (staging / "index.html").write_text(page, encoding="utf-8")
        files.append("index.html")
        manifest = {
            "settings": asdict(settings),
            "keypoint_names": list(names),
            "labelled": [
                {
                    "mesh": str(item.shape.path),
                    "labels": item.landmarks.source,
                    "mesh_hash": item.shape.mesh_hash,
                    "diagonal": diagonal(item.shape.mesh),
                    "snap_distances": dict(
                        zip(item.snapped.names, item.snapped.snap_distances.tolist(), strict=True)
                    ),
                    "surface_distances": dict(
                        zip(
                            item.snapped.names,
                            item.snapped.surface_distances.tolist(),
                            strict=True,
                        )
                    ),
                }
                for item in labelled
            ],
            "shapes": [
                {
                    "mesh": str(r.shape.path),
                    "stem": r.shape.stem,
                    "mesh_hash": r.shape.mesh_hash,
                    "n_points": len(r.shape.points),
                    "seed": settings.seed,
                    "diagonal": diagonal(r.shape.mesh),
                }
                for r in results
            ],
            "confidence": "per keypoint, the optimiser's softmax weight of the chosen point "
            "(bt3d.optimize.Prediction.confidences); see docs/own-shapes.md",
            "files": files,
        }
        save_json_atomic(staging / MANIFEST, manifest)
        old: list[str] = []
        if (out / MANIFEST).is_file():
            with contextlib.suppress(CacheError):
                old = list(load_json(out / MANIFEST).get("files", []))
        out.mkdir(parents=True, exist_ok=True)
        for name in [*files, MANIFEST]:
            os.replace(staging / name, out / name)
        for name in set(old) - set(files):
            if "/" not in name and name != MANIFEST:
                (out / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return files


def snap_report(item: Labelled, settings: DetectSettings) -> str:
    """One line: how far a labels file's points moved to the sampled points."""
    diag = diagonal(item.shape.mesh)
    snap = item.snapped.snap_distances
    return (
        f"{item.landmarks.source}: {len(snap)} points on {item.shape.path.name}, snapped "
        f"to the nearest of {settings.n_points} sampled points: median "
        f"{np.median(snap) / diag:.4f}, max {snap.max() / diag:.4f} of the diagonal"
    )


def run_detect(
    pairs: Sequence[tuple[Path, Path]],
    shapes_dir: Path,
    out: Path,
    settings: DetectSettings,
    progress: bool = True,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] = lambda m: print(f"bt3d: warning: {m}", file=sys.stderr),
) -> list[Detected]:
    """The whole job; see the module docstring. Returns the predictions per folder mesh."""
    labelled, targets, names = prepare(pairs, shapes_dir, out, settings, warn)
    for item in labelled:
        log(snap_report(item, settings))
    shapes = [item.shape for item in labelled] + targets
    computed, cached = compute_features(shapes, settings, out / CACHE_DIR, progress)
    log(f"features: {computed} computed, {cached} from the cache ({out / CACHE_DIR})")
    prototypes = build_model(labelled, names, settings)
    log(f"keypoints: optimising {len(names)} keypoints on {len(targets)} shape(s) together")
    results = detect_shapes(targets, prototypes, names, settings)
    write_results(out, labelled, results, names, settings)
    log(
        f"wrote {out}: {len(names)} keypoints on {len(results)} shape(s) (<stem>.csv/.pp/.json), "
        f"view {out / 'index.html'}"
    )
    return results


__all__ = [
    "DetectSettings",
    "Detected",
    "Labelled",
    "Shape",
    "build_model",
    "check_output_folder",
    "compute_features",
    "detect_shapes",
    "feature_file",
    "keypointnet_record",
    "label_shapes",
    "list_meshes",
    "load_shape",
    "pair_arguments",
    "prepare",
    "run_detect",
    "snap_report",
]
