"""KeypointNet records: category ids, annotation files, the sample order, keypoint labels and
the dataset folder.

Layout under a dataset root (as KeypointNet ships it)::

    annotations/<category>.json
    pcds/<class_id>/<model_id>.pcd
    ShapeNetCore.v2.ply/<class_id>/<model_id>.ply
    benchmark_indices.csv            (Back to 3D's sample order, ``class_id,mesh_id``)
    keypoint_labels.json             (optional: a text label per category and semantic id)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bt3d.atomic import write_bytes_atomic
from bt3d.errors import ConfigError, DataError
from bt3d.io.pcd import read_pcd
from bt3d.io.ply import check_surface, read_ply
from bt3d.io.text import read_json, read_text
from bt3d.structures import Mesh, ShapeAnnotation

CATEGORY_IDS: dict[str, str] = {
    "airplane": "02691156",
    "bathtub": "02808440",
    "bed": "02818832",
    "bottle": "02876657",
    "cap": "02954340",
    "car": "02958343",
    "chair": "03001627",
    "guitar": "03467517",
    "helmet": "03513137",
    "knife": "03624134",
    "laptop": "03642806",
    "motorcycle": "03790512",
    "mug": "03797390",
    "skateboard": "04225987",
    "table": "04379243",
    "vessel": "04530566",
}
_CATEGORY_NAMES = {v: k for k, v in CATEGORY_IDS.items()}
_CLASS_ID_RE = re.compile(r"^[0-9]{8}$")
_MODEL_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def class_id_of(name: str) -> str:
    """ShapeNet synset id of a KeypointNet category name (a class id is returned unchanged)."""
    if name in CATEGORY_IDS:
        return CATEGORY_IDS[name]
    if name in _CATEGORY_NAMES:
        return name
    raise ConfigError(f"unknown category {name!r}; known: {', '.join(CATEGORY_IDS)}")


def category_of(class_id: str) -> str:
    """KeypointNet category name of a ShapeNet synset id (a name is returned unchanged)."""
    if class_id in _CATEGORY_NAMES:
        return _CATEGORY_NAMES[class_id]
    if class_id in CATEGORY_IDS:
        return class_id
    known = ", ".join(f"{k} ({v})" for k, v in CATEGORY_IDS.items())
    raise ConfigError(f"unknown class id {class_id!r}; known: {known}")


def _number(where: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: {what} must be a number, got {str(value)[:60]!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise DataError(f"{where}: {what} is not finite ({str(value)[:40]})")
    return number


def _index(where: str, value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: {what} must be an integer, got {str(value)[:60]!r}")
    if not 0 <= value < 2**62:
        raise DataError(f"{where}: {what} must be in [0, 2**62), got {str(value)[:40]}")
    return value


def _vector(where: str, value: Any, what: str) -> list[float]:
    if not isinstance(value, list) or len(value) != 3:
        raise DataError(f"{where}: {what} must be a list of 3 numbers, got {str(value)[:80]!r}")
    return [_number(where, v, what) for v in value]


def _field(where: str, record: Any, key: str) -> Any:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if key not in record:
        raise DataError(f"{where}: missing key {key!r}")
    return record[key]


def _parse_record(path: Path, number: int, record: Any) -> ShapeAnnotation:
    where = f"{path}: record {number}"
    class_id = _field(where, record, "class_id")
    model_id = _field(where, record, "model_id")
    if not isinstance(class_id, str) or not _CLASS_ID_RE.match(class_id):
        raise DataError(f"{where}: class_id must be an 8-digit string, got {str(class_id)[:60]!r}")
    if not isinstance(model_id, str) or not _MODEL_ID_RE.match(model_id):
        raise DataError(f"{where}: model_id must be an id string, got {str(model_id)[:60]!r}")
    where = f"{path}: record {number} (model {model_id})"
    keypoints = _field(where, record, "keypoints")
    if not isinstance(keypoints, list):
        raise DataError(f"{where}: keypoints must be a list")
    symmetries = record.get("symmetries", {})
    if not isinstance(symmetries, dict):
        raise DataError(f"{where}: symmetries must be a JSON object")
    sem, pidx, xyz, fidx, uvs = [], [], [], [], []
    for k, kp in enumerate(keypoints):
        at = f"{where} keypoint {k}"
        sem.append(_index(at, _field(at, kp, "semantic_id"), "semantic_id"))
        xyz.append(_vector(at, _field(at, kp, "xyz"), "xyz"))
        pcd_info = _field(at, kp, "pcd_info")
        pidx.append(_index(at, _field(at, pcd_info, "point_index"), "point_index"))
        mesh_info = _field(at, kp, "mesh_info")
        fidx.append(_index(at, _field(at, mesh_info, "face_index"), "face_index"))
        uvs.append(_vector(at, _field(at, mesh_info, "face_uv"), "face_uv"))
    return ShapeAnnotation(
        class_id=class_id,
        model_id=model_id,
        semantic_ids=np.array(sem, dtype=np.int64),
        point_indices=np.array(pidx, dtype=np.int64),
        xyz=np.array(xyz, dtype=np.float64).reshape(-1, 3),
        face_indices=np.array(fidx, dtype=np.int64),
        face_uvs=np.array(uvs, dtype=np.float64).reshape(-1, 3),
        symmetries=symmetries,
        source=f"{path} record {number}",
    )


def read_annotations(path: str | Path) -> list[ShapeAnnotation]:
    """Read a KeypointNet annotation file (``annotations/<category>.json``).

    Every record must have ``class_id``, ``model_id``, ``keypoints`` (each with ``xyz``,
    ``semantic_id``, ``pcd_info.point_index``, ``mesh_info.face_index``, ``mesh_info.face_uv``);
    ``symmetries`` is kept as stored (``{}`` when absent). A model id may appear only once.
    """
    path = Path(path)
    records = read_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    out = [_parse_record(path, i, record) for i, record in enumerate(records)]
    annotations_by_model(out)
    return out


def annotations_by_model(annotations: Iterable[ShapeAnnotation]) -> dict[str, ShapeAnnotation]:
    """model id -> annotation, of the records of one file or of several.

    Raises:
        DataError: a model annotated twice, naming both records (``ShapeAnnotation.source``).
    """
    by_model: dict[str, ShapeAnnotation] = {}
    for ann in annotations:
        first = by_model.setdefault(ann.model_id, ann)
        if first is not ann:
            raise DataError(
                f"{ann.source}: model {ann.model_id} is annotated twice (also in "
                f"{first.source}); keep one record per model"
            )
    return by_model


def write_annotations(
    path: str | Path,
    annotations: Iterable[ShapeAnnotation],
    colors: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write annotations as KeypointNet JSON.

    Args:
        colors: optional model_id -> (K, 3) uint8 colour of each keypoint, written as ``rgb``
            (KeypointNet stores the surface colour there); keypoints get no ``rgb`` otherwise.
    """
    records = []
    for ann in annotations:
        rgb = None if colors is None else np.asarray(colors[ann.model_id]).tolist()
        keypoints = []
        for k in range(ann.num_keypoints):
            kp: dict[str, Any] = {"xyz": ann.xyz[k].tolist()}
            if rgb is not None:
                kp["rgb"] = [int(v) for v in rgb[k]]
            kp["semantic_id"] = int(ann.semantic_ids[k])
            kp["pcd_info"] = {"point_index": int(ann.point_indices[k])}
            kp["mesh_info"] = {
                "face_index": int(ann.face_indices[k]),
                "face_uv": ann.face_uvs[k].tolist(),
            }
            keypoints.append(kp)
        records.append(
            {
                "class_id": ann.class_id,
                "model_id": ann.model_id,
                "keypoints": keypoints,
                "symmetries": ann.symmetries,
            }
        )
    write_bytes_atomic(path, json.dumps(records).encode())


def validate_annotation(
    annotation: ShapeAnnotation, n_points: int, n_faces: int | None = None
) -> None:
    """Check that keypoint indices fit a point cloud of ``n_points`` (and ``n_faces`` faces).

    Also checks that every ``face_uv`` is barycentric (entries >= -1e-3, sum 1 within 1e-3).
    """
    where = f"{annotation.source} (model {annotation.model_id})"
    for k, (p, f) in enumerate(zip(annotation.point_indices, annotation.face_indices, strict=True)):
        if not 0 <= p < n_points:
            raise DataError(
                f"{where} keypoint {k}: point_index {p} out of range for {n_points} points"
            )
        if n_faces is not None and not 0 <= f < n_faces:
            raise DataError(
                f"{where} keypoint {k}: face_index {f} out of range for {n_faces} faces"
            )
    uv = annotation.face_uvs
    bad = (np.abs(uv.sum(axis=1) - 1.0) > 1e-3) | (uv < -1e-3).any(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where} keypoint {k}: face_uv {uv[k].tolist()} is not barycentric")


def read_sample_order(path: str | Path) -> list[tuple[str, str]]:
    """Read Back to 3D's ``benchmark_indices.csv``: header ``class_id,mesh_id``, then rows.

    Returns:
        list of (class_id, model_id) in file order.
    """
    path = Path(path)
    lines = read_text(path).splitlines()
    if not lines or lines[0].strip().replace(" ", "") != "class_id,mesh_id":
        first = lines[0][:60] if lines else ""
        raise DataError(f"{path}: line 1: expected header 'class_id,mesh_id', got {first!r}")
    out: list[tuple[str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2:
            raise DataError(f"{path}: line {number}: expected 2 fields, found {len(parts)}")
        class_id, model_id = parts
        if not _CLASS_ID_RE.match(class_id):
            raise DataError(f"{path}: line {number}: class_id {class_id[:40]!r} is not 8 digits")
        if not _MODEL_ID_RE.match(model_id):
            raise DataError(f"{path}: line {number}: invalid model id {model_id[:60]!r}")
        out.append((class_id, model_id))
    return out


def write_sample_order(path: str | Path, order: Iterable[tuple[str, str]]) -> None:
    """Write (class_id, model_id) rows as ``class_id,mesh_id`` CSV."""
    body = "".join(f"{c},{m}\n" for c, m in order)
    write_bytes_atomic(path, ("class_id,mesh_id\n" + body).encode())


def read_keypoint_labels(path: str | Path) -> dict[str, dict[int, str]]:
    """Read KeypointNet's ``keypoint_labels.json``: ``{"keypoint_labels": {category:
    {"<semantic id>": "text"}}}`` (``class_mapping`` and other keys are ignored).

    Returns:
        category name -> semantic id -> text label.
    """
    path = Path(path)
    content = read_json(path)
    table = content.get("keypoint_labels") if isinstance(content, dict) else None
    if not isinstance(table, dict):
        raise DataError(f"{path}: expected an object with a 'keypoint_labels' object")
    out: dict[str, dict[int, str]] = {}
    for category, labels in table.items():
        if not isinstance(labels, dict):
            raise DataError(f"{path}: keypoint_labels.{category} must be an object")
        parsed: dict[int, str] = {}
        for key, text in labels.items():
            if not (isinstance(key, str) and key.isdigit()) or not isinstance(text, str):
                raise DataError(
                    f"{path}: keypoint_labels.{category}: expected '<semantic id>': '<text>', "
                    f"got {key!r}: {str(text)[:40]!r}"
                )
            parsed[int(key)] = text
        out[str(category)] = parsed
    return out


OWNER_MARKER = ".bt3d-dataset.json"  # in a dataset folder that a bt3d rule created


def claim_dataset_folder(root: str | Path, written_by: str) -> Path:
    """Create ``root`` and mark it as written by the workflow's ``written_by`` rule
    (``synthetic`` or ``download``), before that rule writes anything else into it."""
    marker = Path(root) / OWNER_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(marker, (json.dumps({"written_by": written_by}) + "\n").encode())
    return marker


def dataset_owner(root: str | Path) -> str | None:
    """The rule that created a dataset folder (see :func:`claim_dataset_folder`), or None for
    a folder bt3d did not create (a user's own data, which the workflow never writes to)."""
    marker = Path(root) / OWNER_MARKER
    if not marker.is_file():
        return None
    content = read_json(marker)
    return content.get("written_by") if isinstance(content, dict) else None


def load_points(path: str | Path, n_points: int = 2048) -> np.ndarray:
    """(n_points, 3) float64 point cloud of a ``.pcd``; DataError if it has another size."""
    points, _colors = read_pcd(path)
    if len(points) != n_points:
        raise DataError(f"{path}: expected {n_points} points, found {len(points)}")
    return points.astype(np.float64)


def load_mesh(path: str | Path) -> Mesh:
    """The triangle mesh of a ``.ply``; DataError when it has no surface (check_surface)."""
    mesh = read_ply(path)
    check_surface(mesh)
    return mesh


class KeypointNetDataset:
    """A dataset root in KeypointNet layout; categories may be given by name or class id."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._annotations: dict[str, dict[str, ShapeAnnotation]] = {}

    def annotation_path(self, category: str) -> Path:
        return self.root / "annotations" / f"{category_of(category)}.json"

    def pcd_path(self, class_id: str, model_id: str) -> Path:
        return self.root / "pcds" / class_id_of(class_id) / f"{model_id}.pcd"

    def mesh_path(self, class_id: str, model_id: str) -> Path:
        return self.root / "ShapeNetCore.v2.ply" / class_id_of(class_id) / f"{model_id}.ply"

    @property
    def sample_order_path(self) -> Path:
        return self.root / "benchmark_indices.csv"

    def sample_order(self) -> list[tuple[str, str]]:
        """Rows of ``<root>/benchmark_indices.csv``."""
        return read_sample_order(self.sample_order_path)

    def annotations(self, category: str) -> dict[str, ShapeAnnotation]:
        """model_id -> annotation of a category (read once, then cached)."""
        name = category_of(category)
        if name not in self._annotations:
            records = read_annotations(self.annotation_path(name))
            expected = CATEGORY_IDS[name]
            for ann in records:
                if ann.class_id != expected:
                    raise DataError(
                        f"{ann.source}: model {ann.model_id} has class_id {ann.class_id}, "
                        f"expected {expected} ({name})"
                    )
            self._annotations[name] = annotations_by_model(records)
        return self._annotations[name]

    def load_points(self, category: str, model_id: str, n_points: int = 2048) -> np.ndarray:
        """(n_points, 3) float64 point cloud of a shape (see :func:`load_points`)."""
        return load_points(self.pcd_path(category, model_id), n_points)

    def load_mesh(self, category: str, model_id: str) -> Mesh:
        """The shape's triangle mesh (see :func:`load_mesh`)."""
        return load_mesh(self.mesh_path(category, model_id))

    @property
    def keypoint_labels_path(self) -> Path:
        return self.root / "keypoint_labels.json"

    def keypoint_labels(self, category: str) -> dict[int, str]:
        """Semantic id -> text label of a category from ``<root>/keypoint_labels.json``;
        empty when the dataset has no such file or it does not list the category."""
        if not self.keypoint_labels_path.is_file():
            return {}
        return read_keypoint_labels(self.keypoint_labels_path).get(category_of(category), {})

    def annotation_order(self, category: str) -> list[tuple[str, str]]:
        """(class_id, model_id) of the category's annotated shapes in annotation-file order:
        a sample order for datasets that come without ``benchmark_indices.csv``."""
        return [(a.class_id, a.model_id) for a in self.annotations(category).values()]

    def shapes_with_files(self, category: str) -> list[str]:
        """Annotated model ids of a category whose point cloud and mesh files both exist, in
        annotation-file order."""
        return [
            model_id
            for model_id in self.annotations(category)
            if self.pcd_path(category, model_id).is_file()
            and self.mesh_path(category, model_id).is_file()
        ]

    def missing_files(self, categories: Iterable[str]) -> list[Path]:
        """Annotation files, point clouds and meshes of ``categories`` that do not exist.

        Point clouds and meshes are checked for every annotated model of a category whose
        annotation file exists.
        """
        missing: list[Path] = []
        for category in categories:
            path = self.annotation_path(category)
            if not path.is_file():
                missing.append(path)
                continue
            for model_id in self.annotations(category):
                for p in (self.pcd_path(category, model_id), self.mesh_path(category, model_id)):
                    if not p.is_file():
                        missing.append(p)
        return missing
