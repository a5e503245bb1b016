"""The ``bt3d`` command: the pipeline on your own shapes, outside the Snakemake workflow.

Subcommands::

    bt3d synthetic OUT                       write the embedded synthetic dataset
    bt3d features MESH.ply [POINTS.pcd] -o OUT.npz [--backbone NAME ...]
    bt3d predict --prototypes P.npz FEATURES.npz -o pred.json
    bt3d backbones                           list the backbones and whether they are usable

Errors raised on purpose by bt3d (:class:`bt3d.errors.Bt3dError`) print one line
``bt3d: error: ...`` to stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bt3d.errors import Bt3dError, ConfigError

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

    feat = sub.add_parser("features", help="back-projected point features of one shape")
    feat.add_argument("mesh", type=Path, metavar="MESH.ply")
    feat.add_argument(
        "points",
        type=Path,
        nargs="?",
        metavar="POINTS.pcd",
        help="point cloud; when absent, --n-points are sampled on the mesh surface",
    )
    feat.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.npz")
    feat.add_argument("--backbone", default="dinov2_vits14_offline")
    feat.add_argument("--layer", default=None, help="ViT layer: last_norm, block9, blocks9-11")
    feat.add_argument("--checkpoint", default=None, help="local backbone weights file")
    feat.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    feat.add_argument("--n-points", type=int, default=2048)
    feat.add_argument("--seed", type=int, default=0, help="seed of the surface sampling")
    feat.add_argument("--n-azimuth", type=int, default=12)
    feat.add_argument("--n-polar", type=int, default=5)
    feat.add_argument("--image-size", type=int, default=224)
    feat.add_argument("--sampling", choices=("nearest", "bilinear"), default="nearest")
    feat.add_argument("--sigma", type=float, default=0.01)
    feat.add_argument("--render-backend", default="embree")
    feat.add_argument("--batch-size", type=int, default=8)
    feat.add_argument(
        "--normalise",
        action="store_true",
        help="centre the shape and scale it to a unit bounding-box diagonal first",
    )

    pred = sub.add_parser("predict", help="predict keypoints from prototypes and features")
    pred.add_argument("features", type=Path, metavar="FEATURES.npz")
    pred.add_argument("--prototypes", type=Path, required=True, metavar="P.npz")
    pred.add_argument("-o", "--output", type=Path, required=True, metavar="pred.json")
    pred.add_argument("--mode", choices=("fast", "reference"), default="fast")
    pred.add_argument("--steps", type=int, default=None)
    pred.add_argument("--seed", type=int, default=0)
    pred.add_argument("--device", default="cpu")

    sub.add_parser("backbones", help="list the registered backbones")

    ver = sub.add_parser(
        "verify", help="check every artifact of a results folder; --delete removes bad ones"
    )
    ver.add_argument("folder", type=Path, metavar="FOLDER", help="e.g. results/<run>")
    ver.add_argument("--delete", action="store_true", help="delete corrupt/stale files")
    return parser


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
    from bt3d.backbones import get_backbone
    from bt3d.cache import config_hash
    from bt3d.io import read_pcd, read_ply
    from bt3d.pipeline import (
        extract_shape_features,
        feature_settings,
        sample_surface,
        save_shape_features,
        unit_box,
    )

    mesh = read_ply(args.mesh)
    if args.points is not None:
        points = read_pcd(args.points)[0].astype(np.float64)
    else:
        points = sample_surface(mesh, args.n_points, args.seed)
    if args.normalise:
        mesh, points = unit_box(mesh, points)
    backbone = get_backbone(args.backbone, args.device, args.checkpoint, args.layer)
    settings = {
        "n_azimuth": args.n_azimuth,
        "n_polar": args.n_polar,
        "image_size": args.image_size,
        "sampling": args.sampling,
        "sigma": args.sigma,
        "render_backend": args.render_backend,
    }
    shape = extract_shape_features(
        mesh,
        points,
        backbone,
        batch_size=args.batch_size,
        device=args.device,
        **settings,
    )
    header = {
        "config_hash": config_hash(feature_settings(args.backbone, args.layer, **settings)),
        "backbone": args.backbone,
        "layer": args.layer,
        "model_id": args.mesh.stem,
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


def _cmd_predict(args: argparse.Namespace) -> int:
    from bt3d.cache import save_json_atomic
    from bt3d.fewshot import KeypointPrototypes
    from bt3d.optimize import optimise_keypoints
    from bt3d.pipeline import load_shape_features

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
    prediction = optimise_keypoints(
        shape.features,
        shape.geodesic_normalised,
        prototypes,
        mode=args.mode,
        steps=args.steps,
        seed=args.seed,
        device=args.device,
    )
    out = {
        "features": str(args.features),
        "prototypes": str(args.prototypes),
        "model_id": header.get("model_id"),
        "backbone": header.get("backbone"),
        "semantic_ids": prediction.semantic_ids.tolist(),
        "indices": prediction.indices.tolist(),
        "confidences": [float(c) for c in prediction.confidences],
    }
    out["xyz"] = shape.points[prediction.indices].tolist()
    save_json_atomic(args.output, out)
    print(f"wrote {args.output}: {len(prediction.indices)} keypoints")
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
    from bt3d.cache import verify_run

    checked, bad = verify_run(args.folder, delete=args.delete)
    for _path, problem in bad:
        print(f"{'deleted' if args.delete else 'bad'}: {problem}")
    print(f"{args.folder}: {checked} artifacts checked, {len(bad)} bad")
    return 1 if bad and not args.delete else 0


COMMANDS = {
    "synthetic": _cmd_synthetic,
    "features": _cmd_features,
    "predict": _cmd_predict,
    "backbones": _cmd_backbones,
    "verify": _cmd_verify,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bt3d``; returns the exit code (0, or 2 for bt3d errors)."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except Bt3dError as exc:
        message = " ".join(str(exc).split())
        print(f"bt3d: error: {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
