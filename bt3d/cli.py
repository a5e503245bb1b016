"""The ``bt3d`` command: the pipeline on your own shapes, outside the Snakemake workflow.

Subcommands::

    bt3d synthetic OUT                       write the embedded synthetic dataset
    bt3d features MESH.ply [POINTS.pcd] -o OUT.npz [--backbone NAME ...] [--model-id ID]
    bt3d prototypes LABELLED.npz [...] --annotations ANN.json [...] -o P.npz [--reduction mean]
    bt3d predict --prototypes P.npz FEATURES.npz -o pred.json
    bt3d detect --labelled MESH LABELS [...] --shapes DIR -o OUT
                                             keypoints on a folder of meshes (docs/own-shapes.md)
    bt3d backbones                           list the backbones and whether they are usable
    bt3d verify FOLDER [--delete]            check the artifacts of a results folder

Few-shot keypoints on your own shapes, without the Snakemake workflow:

1. ``bt3d features`` on every shape, the labelled ones and the ones to predict on. The
   header of the features file records the backbone, the layer and the shape's model id:
   ``--model-id``, by default the mesh file name without its extension (``chair_7.ply`` ->
   ``chair_7``). For a labelled shape, give the POINTS.pcd that the annotations' point
   indices refer to (points sampled with ``--n-points`` are only right if the annotations
   were made on them).
2. ``bt3d prototypes`` on the labelled shapes' features files, with KeypointNet-format
   annotation JSON files (``[{"class_id", "model_id", "keypoints": [{"semantic_id",
   "pcd_info": {"point_index"}, ...}]}]``) holding one record per labelled model id. It
   builds the few-shot keypoint model (:func:`bt3d.fewshot.build_prototypes`; ``--reduction
   sum`` is the reference code's summed target distances) and records the backbone and layer,
   the labelled model ids (``shot_ids``), the category and a config hash in its header, as the
   workflow's ``prototypes`` rule does. It refuses: a model id absent from the annotations or
   annotated twice, a features file given twice for one model id, features of different
   backbones, layers or channel counts, labelled shapes of different classes, and point
   indices out of range for a file's point count. On error nothing is written.
3. ``bt3d predict`` with those prototypes on the other shapes' features files (it refuses
   features of another backbone or layer than the prototypes).

Errors raised on purpose by bt3d (:class:`bt3d.errors.Bt3dError`) and file-system errors
print one line ``bt3d: error: ...`` to stderr and exit with code 2; an output that cannot be
written is reported so before any work.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bt3d.errors import Bt3dError, ConfigError, DataError

if TYPE_CHECKING:
    from bt3d.structures import ShapeAnnotation

EXIT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bt3d",
        description="Few-shot 3D keypoint detection with back-projected 2D features.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    syn = sub.add_parser("synthetic", help="write the embedded synthetic KeypointNet-layout data")
    syn.add_argument("out", type=Path, metavar="OUT", help="dataset root to create")
    syn.add_argument(
        "--categories", nargs="+", default=["airplane", "chair", "table"], metavar="NAME"
    )
    syn.add_argument("--shapes", type=int, default=24, help="shapes per category (24)")
    syn.add_argument("--points", type=int, default=2048, help="points per cloud (2048)")
    syn.add_argument("--seed", type=int, default=0)

    feat = sub.add_parser(
        "features",
        help="back-projected point features of one shape",
        description="Features of one shape with the workflow's settings: the defaults of "
        "config.yaml, updated by --config FILE (the workflow's config format), updated by the "
        "options given here.",
    )
    feat.add_argument("mesh", type=Path, metavar="MESH.ply")
    feat.add_argument(
        "points",
        type=Path,
        nargs="?",
        metavar="POINTS.pcd",
        help="point cloud; when absent, --n-points are sampled on the mesh surface",
    )
    feat.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.npz")
    _add_config_option(feat)
    feat.add_argument("--backbone", help="backbone.name")
    feat.add_argument(
        "--layer", type=_nullable, help="backbone.layer: last_norm, block9, blocks9-11, none"
    )
    feat.add_argument("--checkpoint", type=_nullable, help="backbone.checkpoint (weights file)")
    feat.add_argument("--device", help="device: auto, cpu, cuda or cuda:N")
    feat.add_argument("--n-points", type=int, default=2048, help="points sampled (2048)")
    feat.add_argument("--seed", type=int, default=0, help="seed of the surface sampling")
    feat.add_argument("--n-azimuth", type=int, help="render.n_azimuth")
    feat.add_argument("--n-polar", type=int, help="render.n_polar")
    feat.add_argument("--image-size", type=int, help="render.image_size")
    feat.add_argument("--render-backend", help="render.backend")
    feat.add_argument("--sampling", choices=("nearest", "bilinear"), help="features.sampling")
    feat.add_argument("--sigma", type=float, help="features.sigma")
    feat.add_argument("--knn", type=int, help="features.knn")
    feat.add_argument("--batch-size", type=int, help="backbone.batch_size")
    feat.add_argument(
        "--surface-tolerance",
        type=float,
        help="dataset.surface_tolerance: largest distance of a POINTS.pcd point from the mesh "
        "surface, as a fraction of the mesh's bounding-box diagonal",
    )
    feat.add_argument(
        "--precision",
        choices=("float32", "bfloat16", "float16"),
        help="backbone.precision: autocast type of the backbone (float32 = none, the reference)",
    )
    feat.add_argument(
        "--tokens",
        choices=("all", "object"),
        help="backbone.tokens: ViT patches that enter attention: all (the reference), or "
        "only those the shape covers grown by backbone.token_margin (object: faster)",
    )
    feat.add_argument(
        "--visibility-layers",
        type=int,
        metavar="K",
        help="features.visibility_layers: faces per pixel that count as seen: 1 = the face "
        "drawn there; 5 = the authors' code, occluded faces included",
    )
    feat.add_argument(
        "--model-id",
        default=None,
        metavar="ID",
        help="model id recorded in the header, looked up in the annotations by `bt3d "
        "prototypes` (default: the mesh file name without extension)",
    )
    feat.add_argument(
        "--normalise",
        action=argparse.BooleanOptionalAction,
        help="dataset.normalise: render the shape centred and scaled to a unit bounding-box "
        "diagonal and measure geodesics in that unit; stored points and predicted xyz stay in "
        "the files' frame",
    )
    _suppress_defaults(feat, FEATURE_OPTIONS)

    proto = sub.add_parser(
        "prototypes",
        help="few-shot keypoint prototypes from labelled shapes' features and annotations",
        description="Build the few-shot keypoint model from features files written by `bt3d "
        "features` for labelled shapes. Each file's model id (its --model-id, by default the "
        "mesh file name without extension) is looked up in the KeypointNet-format annotation "
        "files, whose point indices must refer to the file's points.",
    )
    proto.add_argument(
        "labelled",
        type=Path,
        nargs="+",
        metavar="LABELLED.npz",
        help="features files of the labelled shapes, one per model id",
    )
    proto.add_argument(
        "--annotations",
        type=Path,
        action="append",
        required=True,
        metavar="ANN.json",
        help="KeypointNet-format annotation file; repeat for several files",
    )
    proto.add_argument("-o", "--output", type=Path, required=True, metavar="P.npz")
    _add_config_option(proto)
    proto.add_argument(
        "--reduction",
        choices=("mean", "sum"),
        help="optimiser.prototype_reduction: target distance of a keypoint pair over the "
        "labelled shapes, mean or sum (the reference code)",
    )
    proto.add_argument(
        "--labelled-features",
        dest="labelled_features",
        choices=("points", "annotated_xyz"),
        help="features.labelled: the labelled shapes' keypoint features: points (smoothed point "
        "features) or annotated_xyz (the authors': view averages smoothed among the keypoints)",
    )
    _suppress_defaults(proto, ["reduction", "labelled_features"])

    pred = sub.add_parser("predict", help="predict keypoints from prototypes and features")
    pred.add_argument("features", type=Path, metavar="FEATURES.npz")
    pred.add_argument("--prototypes", type=Path, required=True, metavar="P.npz")
    pred.add_argument("-o", "--output", type=Path, required=True, metavar="pred.json")
    _add_config_option(pred)
    pred.add_argument("--mode", choices=("fast", "reference"), help="optimiser.mode")
    pred.add_argument("--steps", type=int, help="optimiser.steps")
    pred.add_argument("--seed", type=int, help="optimiser.seed")
    pred.add_argument("--device", help="device: auto, cpu, cuda or cuda:N")
    _suppress_defaults(pred, ["mode", "steps", "seed"])

    _add_detect_parser(sub)

    sub.add_parser("backbones", help="list the registered backbones")

    ver = sub.add_parser(
        "verify", help="check every artifact of a results folder; --delete removes bad ones"
    )
    ver.add_argument("folder", type=Path, metavar="FOLDER", help="e.g. results/<run>")
    ver.add_argument("--delete", action="store_true", help="delete corrupt/stale files")
    return parser


# Options of the commands that set a key of the workflow's config: option -> (section, key).
CONFIG_KEYS = {
    "backbone": ("backbone", "name"),
    "layer": ("backbone", "layer"),
    "checkpoint": ("backbone", "checkpoint"),
    "batch_size": ("backbone", "batch_size"),
    "precision": ("backbone", "precision"),
    "tokens": ("backbone", "tokens"),
    "n_azimuth": ("render", "n_azimuth"),
    "n_polar": ("render", "n_polar"),
    "image_size": ("render", "image_size"),
    "render_backend": ("render", "backend"),
    "sampling": ("features", "sampling"),
    "sigma": ("features", "sigma"),
    "knn": ("features", "knn"),
    "visibility_layers": ("features", "visibility_layers"),
    "labelled_features": ("features", "labelled"),
    "normalise": ("dataset", "normalise"),
    "surface_tolerance": ("dataset", "surface_tolerance"),
    "reduction": ("optimiser", "prototype_reduction"),
    "mode": ("optimiser", "mode"),
    "steps": ("optimiser", "steps"),
    "seed": ("optimiser", "seed"),
}


def _nullable(value: str) -> str | None:
    """An option value where ``none`` / ``null`` means the config's null."""
    return None if value.lower() in ("none", "null") else value


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a config file in the workflow's format (e.g. config/paper.yaml) over the "
        "defaults of config.yaml; the other options override it",
    )


def _config(args: argparse.Namespace, keys: Sequence[str]) -> dict:
    """The workflow config this command runs with: defaults, ``--config``, then the options
    ``keys`` of :data:`CONFIG_KEYS` that were given (plus ``--device``)."""
    from bt3d.settings import load_config

    given = vars(args)  # options not given are absent (_suppress_defaults)
    overrides: dict = {}
    for option in keys:
        if option in given:
            section, key = CONFIG_KEYS[option]
            overrides.setdefault(section, {})[key] = given[option]
    if "device" in given:
        overrides["device"] = given["device"]
    return load_config(args.config, overrides)


def _suppress_defaults(parser: argparse.ArgumentParser, keys: Sequence[str]) -> None:
    """Options ``keys`` (and ``--device``) that are not given stay absent from the parsed
    arguments, so that the config decides (a given ``--layer none`` is a value, null)."""
    for action in parser._actions:
        if action.dest in (*keys, "device"):
            action.default = argparse.SUPPRESS


FEATURE_OPTIONS = [
    k
    for k, (section, _) in CONFIG_KEYS.items()
    if section != "optimiser" and k != "labelled_features"
]


def _add_detect_parser(sub) -> None:
    """``bt3d detect``: its options and their defaults (:class:`bt3d.detect.DetectSettings`)."""
    from bt3d.detect import DetectSettings

    d = DetectSettings()
    det = sub.add_parser(
        "detect",
        help="keypoints on a folder of meshes from a few labelled meshes (.pp or .csv labels)",
        description="Few-shot keypoints on every mesh of a folder (obj, ply, stl, off, glb, "
        "gltf; any scale) from a few labelled meshes whose labels are MeshLab PickPoints .pp "
        "files or name,x,y,z CSV files. Writes OUT/<stem>.csv, .pp and .json per mesh and "
        "OUT/index.html (3D view); features are cached in OUT/.cache. See docs/own-shapes.md.",
    )
    det.add_argument(
        "--labelled",
        nargs="+",
        action="extend",
        required=True,
        metavar="MESH LABELS",
        help="pairs of a labelled mesh and its .pp or .csv labels file",
    )
    det.add_argument("--shapes", type=Path, required=True, metavar="DIR", help="meshes to label")
    det.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    det.add_argument("--backbone", default=d.backbone)
    det.add_argument("--layer", default=d.layer, help="ViT layer: last_norm, block9, blocks9-11")
    det.add_argument("--checkpoint", default=d.checkpoint, help="local backbone weights file")
    det.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    det.add_argument("--n-points", type=int, default=d.n_points, help="points sampled per mesh")
    det.add_argument("--seed", type=int, default=d.seed, help="seed of sampling and optimiser")
    det.add_argument("--n-azimuth", type=int, default=d.n_azimuth)
    det.add_argument("--n-polar", type=int, default=d.n_polar)
    det.add_argument("--image-size", type=int, default=d.image_size)
    det.add_argument("--sampling", choices=("nearest", "bilinear"), default=d.sampling)
    det.add_argument("--sigma", type=float, default=d.sigma)
    det.add_argument("--render-backend", default=d.render_backend)
    det.add_argument("--batch-size", type=int, default=d.batch_size)
    det.add_argument("--mode", choices=("fast", "reference"), default=d.mode)
    det.add_argument("--steps", type=int, default=d.steps)
    det.add_argument("--reduction", choices=("mean", "sum"), default=d.reduction)
    det.add_argument(
        "--tolerance",
        type=float,
        default=d.tolerance,
        help="refuse a label farther than this fraction of the bounding-box diagonal from "
        f"its mesh's surface ({d.tolerance})",
    )
    det.add_argument(
        "--category",
        default=None,
        metavar="NAME",
        help="KeypointNet category recorded as class_id in the .json outputs (default: "
        f"{d.class_id})",
    )
    det.add_argument("--no-progress", action="store_true", help="no progress bars")


def _cmd_detect(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from bt3d.detect import DetectSettings, pair_arguments, run_detect
    from bt3d.io import class_id_of

    pairs = pair_arguments(args.labelled)
    values = {
        f.name: getattr(args, f.name) for f in fields(DetectSettings) if hasattr(args, f.name)
    }
    if args.category is not None:
        values["class_id"] = class_id_of(args.category)
    run_detect(pairs, args.shapes, args.output, DetectSettings(**values), not args.no_progress)
    return 0


def _cmd_synthetic(args: argparse.Namespace) -> int:
    from bt3d.synthetic import generate_dataset

    root = generate_dataset(
        args.out,
        categories=tuple(args.categories),
        shapes_per_category=args.shapes,
        n_points=args.points,
        seed=args.seed,
    )
    print(f"wrote synthetic dataset to {root}")
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    import torch

    from bt3d.backbone_spec import check_backbone_settings
    from bt3d.backbones import get_backbone
    from bt3d.cache import config_hash
    from bt3d.consistency import check_points
    from bt3d.device import resolve_device
    from bt3d.io import load_mesh, read_pcd
    from bt3d.pipeline import (
        extract_shape_features,
        sample_surface,
        save_shape_features,
        shape_geodesic,
    )
    from bt3d.settings import FeatureSettings, GeodesicSettings

    config = _config(args, FEATURE_OPTIONS)
    settings, geodesic = FeatureSettings.from_config(config), GeodesicSettings.from_config(config)
    bb = settings.backbone
    check_backbone_settings(bb.name, bb.layer, settings.render.image_size)
    mesh = load_mesh(args.mesh)
    if args.points is not None:
        points = read_pcd(args.points)[0].astype(np.float64)
        check_points(mesh, points, args.points, geodesic.surface_tolerance)
    else:
        points = sample_surface(mesh, args.n_points, args.seed)
    device = resolve_device(config["device"])
    backbone = get_backbone(bb.name, device, bb.checkpoint, bb.layer)
    model_id = args.mesh.stem if args.model_id is None else args.model_id
    raw = shape_geodesic(mesh, points, geodesic, model_id, torch.get_num_threads())
    shape = extract_shape_features(mesh, points, backbone, settings, raw, device)
    key = {"features": settings.to_dict(), "geodesic": geodesic.to_dict()}
    header = {
        "config_hash": config_hash(key),
        "settings": key,
        "backbone": bb.name,
        "layer": bb.layer,
        "model_id": model_id,
        "mesh": str(args.mesh),
        "points_file": None if args.points is None else str(args.points),
    }
    save_shape_features(args.output, shape, header)
    print(
        f"wrote {args.output}: {shape.num_points} points x {shape.features.shape[1]} channels, "
        f"{shape.seen_fraction:.1%} seen by at least one view"
    )
    return 0


def _check_same_backbone(
    prototypes_path: Path, prototypes_header: dict, features_path: Path, features_header: dict
) -> None:
    """Refuse features from another backbone or layer than the prototypes (where both say).

    A missing layer and ``last_norm`` are the same layer.
    """
    for field in ("backbone", "layer"):
        if field not in prototypes_header or field not in features_header:
            continue
        default = "last_norm" if field == "layer" else None
        ours = prototypes_header[field] or default
        theirs = features_header[field] or default
        if ours != theirs:
            raise ConfigError(
                f"{features_path}: features come from {field} {theirs!r} but the prototypes "
                f"{prototypes_path} from {ours!r}; recompute the features with "
                f"--{field} {ours}"
            )


def _same_layer(header: dict) -> str:
    """The layer a features header records (a missing layer is ``last_norm``)."""
    return header.get("layer") or "last_norm"


def _check_same_features(
    first_path: Path,
    first_header: dict,
    first_channels: int,
    path: Path,
    header: dict,
    channels: int,
) -> None:
    """Refuse labelled features of another backbone, layer or width than the first file."""
    for field, ours, theirs in (
        ("backbone", first_header.get("backbone"), header.get("backbone")),
        ("layer", _same_layer(first_header), _same_layer(header)),
    ):
        if ours != theirs:
            raise ConfigError(
                f"{path}: features come from {field} {theirs!r} but {first_path} from "
                f"{ours!r}; all labelled shapes need features of the same backbone and layer"
            )
    if channels != first_channels:
        raise ConfigError(
            f"{path}: features have {channels} channels but {first_path} has "
            f"{first_channels}; all labelled shapes need features of the same backbone and layer"
        )


def _read_all_annotations(paths: Sequence[Path]) -> dict[str, ShapeAnnotation]:
    """model id -> annotation over several KeypointNet files; a model id may occur once."""
    from bt3d.io import annotations_by_model, read_annotations

    for i, path in enumerate(paths):
        if path.resolve() in {p.resolve() for p in paths[:i]}:
            raise ConfigError(f"{path}: annotation file given twice to --annotations")
    return annotations_by_model(ann for path in paths for ann in read_annotations(path))


def _cmd_prototypes(args: argparse.Namespace) -> int:
    from bt3d.cache import config_hash
    from bt3d.consistency import check_points
    from bt3d.fewshot import LabelledShape, build_prototypes
    from bt3d.io import CATEGORY_IDS, category_of, validate_annotation
    from bt3d.pipeline import load_shape_features
    from bt3d.settings import PrototypeSettings
    from bt3d.stages import annotated_shape

    settings = PrototypeSettings.from_config(_config(args, ["reduction", "labelled_features"]))
    reduction = settings.reduction
    annotations = _read_all_annotations(args.annotations)
    named = ", ".join(str(p) for p in args.annotations)
    labelled: list[LabelledShape] = []
    seen: dict[str, Path] = {}
    classes: dict[str, Path] = {}
    first: tuple[Path, dict, int] | None = None
    feature_hashes = []
    for path in args.labelled:
        if not path.is_file():
            raise DataError(
                f"{path}: labelled features file does not exist; write it with `bt3d features`"
            )
        shape, header = load_shape_features(path)
        model_id = header.get("model_id")
        if not isinstance(model_id, str) or not model_id:
            raise DataError(
                f"{path}: header has no model_id; write the file with `bt3d features --model-id`"
            )
        if model_id in seen:
            raise ConfigError(
                f"{path}: model {model_id} is given twice (also by {seen[model_id]}); "
                "give each labelled shape once"
            )
        seen[model_id] = path
        channels = int(shape.features.shape[1])
        if first is None:
            first = (path, header, channels)
        else:
            _check_same_features(*first, path, header, channels)
        ann = annotations.get(model_id)
        if ann is None:
            raise DataError(
                f"{path}: model {model_id!r} is not in the annotations ({named}); set the "
                "model id with `bt3d features --model-id` (default: the mesh file name)"
            )
        try:
            validate_annotation(ann, shape.num_points)
        except DataError as exc:
            raise DataError(
                f"{exc} of {path}; the annotations' point indices must refer to the "
                "POINTS.pcd given to `bt3d features`"
            ) from None
        check_points(ann, shape.points, path)  # the points, not only their count
        if classes and ann.class_id not in classes:
            other, other_path = next(iter(classes.items()))
            raise ConfigError(
                f"{path}: model {model_id} is of class {ann.class_id} but {other_path} of "
                f"class {other}; prototypes are built per category"
            )
        classes.setdefault(ann.class_id, path)
        labelled.append(
            annotated_shape(
                ann,
                shape.features,
                shape.geodesic_normalised,
                settings,
                shape.unsmoothed,
                shape.counts,
            )  # fmt: skip
        )
        feature_hashes.append(header.get("config_hash"))
    if not any(s.semantic_ids.size for s in labelled):
        raise DataError(f"{named}: the labelled shapes have no keypoints annotated")
    prototypes = build_prototypes(labelled, reduction=reduction)
    assert first is not None  # nargs="+" gives at least one file
    class_id = next(iter(classes))
    header = {
        "kind": "prototypes",
        "category": category_of(class_id) if class_id in CATEGORY_IDS.values() else class_id,
        "config_hash": config_hash({"features": feature_hashes, **settings.to_dict()}),
        "shot_ids": [s.model_id for s in labelled],
        # checked by `bt3d predict` against the features of the shapes to predict on
        "backbone": first[1].get("backbone"),
        "layer": first[1].get("layer"),
        "reduction": reduction,
        "labelled": settings.labelled,
        "features_files": [str(p) for p in args.labelled],
        "annotations": [str(p) for p in args.annotations],
    }
    prototypes.save(args.output, header)
    print(
        f"wrote {args.output}: {prototypes.num_keypoints} keypoints from {len(labelled)} "
        f"labelled shapes ({', '.join(s.model_id for s in labelled)})"
    )
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from bt3d.device import resolve_device
    from bt3d.fewshot import KeypointPrototypes
    from bt3d.pipeline import load_shape_features
    from bt3d.settings import OptimiserSettings
    from bt3d.stages import predict_shape, save_predictions

    config = _config(args, ["mode", "steps", "seed"])
    settings = OptimiserSettings.from_config(config)
    shape, header = load_shape_features(args.features)
    prototypes = KeypointPrototypes.load(args.prototypes)
    _check_same_backbone(
        args.prototypes, KeypointPrototypes.read_header(args.prototypes), args.features, header
    )
    if prototypes.features.shape[1] != shape.features.shape[1]:
        raise ConfigError(
            f"{args.prototypes}: prototypes have {prototypes.features.shape[1]} channels but "
            f"{args.features} has {shape.features.shape[1]} (different backbone or layer?)"
        )
    model_id = header.get("model_id") or args.features.stem
    record = predict_shape(
        model_id,
        shape.features,
        shape.geodesic_normalised,
        prototypes,
        settings,
        resolve_device(config["device"]),
    )
    record["xyz"] = shape.points[record["indices"]]
    predictions_header = {
        "kind": "predictions",
        "features": str(args.features),
        "prototypes": str(args.prototypes),
        "backbone": header.get("backbone"),
    }
    save_predictions(args.output, predictions_header, prototypes, settings, [record])
    print(f"wrote {args.output}: {len(record['indices'])} keypoints")
    return 0


def _cmd_backbones(_args: argparse.Namespace) -> int:
    from bt3d.backbones import REGISTRY, available_backbones, known_backbones

    usable = set(available_backbones())
    width = max(len(n) for n in known_backbones())
    for name in known_backbones():
        state = "available" if name in usable else "missing packages"
        print(f"{name:<{width}}  {state:<16}  {REGISTRY[name].summary}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from bt3d.results import verify_run

    checked, bad = verify_run(args.folder, delete=args.delete)
    for _path, problem in bad:
        print(f"{'deleted' if args.delete else 'bad'}: {problem}")
    print(f"{args.folder}: {checked} artifacts checked, {len(bad)} bad")
    return 1 if bad and not args.delete else 0


COMMANDS = {
    "synthetic": _cmd_synthetic,
    "features": _cmd_features,
    "prototypes": _cmd_prototypes,
    "predict": _cmd_predict,
    "detect": _cmd_detect,
    "backbones": _cmd_backbones,
    "verify": _cmd_verify,
}


def _check_output(path: Path, is_folder: bool = False) -> None:
    """ConfigError naming ``path`` unless it can be written: the output file (or, with
    ``is_folder``, folder) is not of the other kind, and its folder exists and is writable or
    can be created (its nearest existing ancestor is a writable folder). Creates nothing."""
    if path.exists() and path.is_dir() != is_folder:
        kind = "a folder; give a file name" if path.is_dir() else "a file; give a folder"
        raise ConfigError(f"{path}: cannot write the output: it is {kind}")
    probe = path if is_folder else path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{path}: cannot write the output: {probe} is not a folder")
    effective = os.access in os.supports_effective_ids
    if not os.access(probe, os.W_OK | os.X_OK, effective_ids=effective):
        raise ConfigError(f"{path}: cannot write the output: folder {probe} is not writable")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bt3d``; returns the exit code (0, or 2 for bt3d errors).

    The output (``-o``, or the dataset folder of ``synthetic``) is checked first, before
    any work: an unwritable one is one line naming it.
    """
    args = _parser().parse_args(argv)
    try:
        folder_output = args.command in ("synthetic", "detect")  # OUT is a folder there
        output = getattr(args, "out" if args.command == "synthetic" else "output", None)
        if output is not None:
            _check_output(output, is_folder=folder_output)
        return COMMANDS[args.command](args)
    except Bt3dError as exc:
        message = " ".join(str(exc).split())
        print(f"bt3d: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # e.g. the disk filled up while writing
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"bt3d: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
