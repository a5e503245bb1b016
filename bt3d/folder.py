"""``dataset.name: folder``: the job of ``bt3d detect`` as Snakemake jobs, on its own functions.

The workflow (``workflow/rules/folder.smk``) splits :func:`bt3d.detect.run_detect` into jobs
that share nothing but files::

    at start   plan_folder: every check of bt3d detect (prepare), nothing written
    per mesh   mesh_features  -> OUT/.cache/<mesh hash>-<settings hash>.npz (bt3d detect's cache)
    once       write_prototypes -> OUT/.cache/folder/prototypes.npz (+ keypoint names)
    per chunk  predict_chunk  -> OUT/.cache/folder/chunk-<i>.json (KeypointNet records)
    once       write_folder_results -> OUT/<stem>.csv/.pp/.json, index.html, detect.json

A feature file is named by the mesh's geometry hash and the feature settings, as in
``bt3d detect``'s cache, so a second run with one more labelled mesh has one feature job;
prototypes and predictions are recomputed. Differences from one ``bt3d detect`` process are
measured in docs/own-shapes.md (Snakemake mode).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bt3d.detect import (
    CACHE_DIR,
    Detected,
    DetectSettings,
    Shape,
    build_model,
    compute_features,
    detect_shapes,
    feature_file,
    keypointnet_record,
    label_shapes,
    load_shape,
    pair_arguments,
    prepare,
    snap_report,
    write_results,
)
from bt3d.errors import Bt3dError, CacheError, ConfigError

PROTOTYPES = "folder/prototypes.npz"


def settings_from_config(config: Mapping[str, Any]) -> DetectSettings:
    """:class:`DetectSettings` from the workflow's config (the keys ``bt3d detect`` has), with
    the class id of ``dataset.folder.category`` when one is given."""
    from bt3d.io import class_id_of

    settings = DetectSettings.from_config(config)
    category = config["dataset"]["folder"]["category"]
    return replace(settings, class_id=class_id_of(category)) if category else settings


@dataclass(frozen=True)
class FolderPlan:
    """What the workflow needs to know before any job: checked inputs and file names (plain
    data, saved as JSON for cluster jobs, which read it instead of checking every mesh again).

    Attributes:
        pairs: [mesh, labels] files; settings: the run's :class:`DetectSettings` as a dict;
        features: feature file -> the mesh it is computed from (labelled and folder meshes,
        one per distinct geometry); labelled_features: the labelled meshes' feature files;
        target_features: folder mesh -> its feature file (sorted by file name); chunks:
        folder meshes per prediction job; notes: lines to show at start (names seen once,
        snapping).
    """

    pairs: list[list[str]]
    settings: dict[str, Any]
    features: dict[str, str]
    labelled_features: list[str]
    target_features: dict[str, str]
    chunks: list[list[str]]
    notes: list[str]

    def feature_settings(self) -> dict[str, Any]:
        """The settings a features job gets: not the prototype/optimiser/output ones, so
        changing those reruns no features job."""
        later = {"mode", "steps", "reduction", "tolerance", "class_id"}
        return {k: v for k, v in self.settings.items() if k not in later}

    def chunk_features(self, chunk: int) -> list[str]:
        """The feature files of one prediction chunk's meshes."""
        return [self.target_features[m] for m in self.chunks[chunk]]

    def save(self, path: Path) -> None:
        from bt3d.cache import save_json_atomic

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_json_atomic(path, {"plan": asdict(self)})

    @classmethod
    def load(cls, path: Path) -> FolderPlan:
        from bt3d.cache import load_json_artifact

        return cls(**load_json_artifact(path)["plan"])


def _config_problems(folder: Mapping[str, Any]) -> list[str]:
    """One line per missing or misnamed file among the folder keys (before loading any)."""
    problems = []
    if not folder["labelled"]:
        problems.append(
            "dataset.folder.labelled: give at least one {mesh: FILE, labels: FILE.pp|.csv}"
        )
    for i, pair in enumerate(folder["labelled"]):
        for key in ("mesh", "labels"):
            if not Path(pair[key]).is_file():
                problems.append(f"dataset.folder.labelled[{i}].{key}: {pair[key]}: no such file")
    if not folder["shapes"]:
        problems.append("dataset.folder.shapes: give the folder of meshes to label")
    elif not Path(folder["shapes"]).is_dir():
        problems.append(f"dataset.folder.shapes: {folder['shapes']}: no such folder")
    return problems


def _config_key(message: str, folder: Mapping[str, Any], out: Path) -> str:
    """The config key whose file a library error names (for the one-line message)."""
    for i, pair in enumerate(folder["labelled"]):
        for key in ("labels", "mesh"):
            if str(pair[key]) in message:
                return f"dataset.folder.labelled[{i}].{key}"
    if message.startswith(f"{out}:"):
        return "dataset.folder.out"
    return "dataset.folder.shapes"


def plan_folder(config: Mapping[str, Any], out: Path) -> FolderPlan:
    """Every check ``bt3d detect`` runs (:func:`bt3d.detect.prepare`), with the config keys.

    Raises:
        ConfigError: one line per bad value, ``<key>: <file>: <problem>``.
    """
    folder = config["dataset"]["folder"]
    problems = _config_problems(folder)
    if problems:
        raise ConfigError("\n".join(problems))
    notes: list[str] = []
    try:
        settings = settings_from_config(config)
        pairs = pair_arguments(
            [p for pair in folder["labelled"] for p in (pair["mesh"], pair["labels"])]
        )
        shapes_dir = Path(folder["shapes"])
        labelled, targets, names = prepare(
            pairs, shapes_dir, out, settings, lambda m: notes.append(f"bt3d: warning: {m}")
        )
    except Bt3dError as exc:
        raise type(exc)(f"{_config_key(str(exc), folder, out)}: {exc}") from None
    notes += [snap_report(item, settings) for item in labelled]
    cache = out / CACHE_DIR
    features: dict[str, str] = {}
    for shape in [item.shape for item in labelled] + targets:
        features.setdefault(str(feature_file(cache, shape, settings)), str(shape.path))
    paths = [str(t.path) for t in targets]
    size = int(folder["chunk_size"])
    return FolderPlan(
        pairs=[[str(m), str(lab)] for m, lab in pairs],
        settings=asdict(settings),
        features=features,
        labelled_features=[str(feature_file(cache, i.shape, settings)) for i in labelled],
        target_features={str(t.path): str(feature_file(cache, t, settings)) for t in targets},
        chunks=[paths[i : i + size] for i in range(0, len(paths), size)],
        notes=notes,
    )


def mesh_features(mesh: Path, settings: DetectSettings, cache: Path) -> Path:
    """One mesh's features into ``bt3d detect``'s cache (:func:`compute_features`)."""
    shape = load_shape(mesh, settings)
    compute_features([shape], settings, cache, progress=False)
    return feature_file(cache, shape, settings)


def _load_features(shapes: Sequence[Shape], settings: DetectSettings, cache: Path) -> None:
    """Fill ``shape.features`` from the feature files the rules made inputs of the job."""
    lacking = [str(s.path) for s in shapes if not feature_file(cache, s, settings).is_file()]
    if lacking:
        raise CacheError(f"{cache}: no features of {', '.join(lacking)}; rerun the workflow")
    compute_features(shapes, settings, cache, progress=False)


def write_prototypes(
    pairs: Sequence[tuple[Path, Path]], settings: DetectSettings, cache: Path, path: Path
) -> list[str]:
    """Prototypes of the labelled meshes (:func:`build_model`), saved with the keypoint names
    in their header; returns the names."""
    labelled, names, _ = label_shapes(pairs, settings, {})
    _load_features([item.shape for item in labelled], settings, cache)
    build_model(labelled, names, settings).save(path, {"keypoint_names": names})
    return names


def predict_chunk(
    meshes: Sequence[Path], prototypes: Path, settings: DetectSettings, cache: Path, path: Path
) -> None:
    """Keypoints of a chunk of folder meshes (:func:`detect_shapes`) as KeypointNet records."""
    from bt3d.cache import load_arrays, save_json_atomic
    from bt3d.fewshot import KeypointPrototypes

    names = load_arrays(prototypes)[1]["keypoint_names"]
    shapes = [load_shape(m, settings) for m in meshes]
    _load_features(shapes, settings, cache)
    results = detect_shapes(shapes, KeypointPrototypes.load(prototypes), names, settings)
    records = [keypointnet_record(r, settings.class_id) for r in results]
    save_json_atomic(path, {"meshes": [str(m) for m in meshes], "records": records})


def _detected(shape: Shape, record: Mapping[str, Any]) -> Detected:
    """A :class:`Detected` from the record :func:`keypointnet_record` wrote (exact floats)."""
    kps = record["keypoints"]
    return Detected(
        shape=shape,
        names=[k["name"] for k in kps],
        semantic_ids=np.array([k["semantic_id"] for k in kps], dtype=np.int64),
        xyz=np.array([k["xyz"] for k in kps], dtype=np.float64).reshape(-1, 3),
        point_indices=np.array([k["pcd_info"]["point_index"] for k in kps], dtype=np.int64),
        confidences=np.array([k["confidence"] for k in kps], dtype=np.float64),
        faces=np.array([k["mesh_info"]["face_index"] for k in kps], dtype=np.int64),
        uvs=np.array([k["mesh_info"]["face_uv"] for k in kps], dtype=np.float64).reshape(-1, 3),
    )


def write_folder_results(
    pairs: Sequence[tuple[Path, Path]],
    shapes_dir: Path,
    out: Path,
    chunks: Sequence[Path],
    settings: DetectSettings,
    log: Callable[[str], None] = print,
) -> list[str]:
    """The outputs of ``bt3d detect`` (:func:`write_results`) from the chunks' predictions."""
    from bt3d.cache import load_json_artifact

    def warn(message: str) -> None:
        print(f"bt3d: warning: {message}", file=sys.stderr)

    labelled, targets, names = prepare(pairs, shapes_dir, out, settings, warn)
    by_mesh: dict[str, Any] = {}
    for chunk in chunks:
        body = load_json_artifact(chunk)
        by_mesh.update(zip(body["meshes"], body["records"], strict=True))
    lacking = [str(t.path) for t in targets if str(t.path) not in by_mesh]
    if lacking:
        raise ConfigError(f"{out}: no predictions for {', '.join(lacking)}; rerun the workflow")
    results = [_detected(t, by_mesh[str(t.path)]) for t in targets]
    files = write_results(out, labelled, results, names, settings)
    log(f"wrote {out}: {len(names)} keypoints on {len(results)} shape(s)")
    return files


__all__ = [
    "FolderPlan",
    "mesh_features",
    "plan_folder",
    "predict_chunk",
    "settings_from_config",
    "write_folder_results",
    "write_prototypes",
]
