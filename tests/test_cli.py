"""The ``bt3d`` command, called in-process through ``bt3d.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from bt3d.cli import main
from bt3d.fewshot import LabelledShape, build_prototypes
from bt3d.io import read_pcd, write_pcd, write_ply
from bt3d.pipeline import load_shape_features
from bt3d.structures import Mesh

FAST = ["--backbone", "classical", "--device", "cpu", "--n-azimuth", "4", "--n-polar", "2",
        "--image-size", "112"]  # fmt: skip


@pytest.fixture(scope="module")
def shape_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An L-shaped mesh (two boxes) as PLY, and 256 surface points as PCD."""
    a = trimesh.creation.box(extents=(0.6, 0.1, 0.2))
    b = trimesh.creation.box(extents=(0.1, 0.5, 0.2))
    b.apply_translation((0.25, 0.3, 0.0))
    tm = trimesh.util.concatenate([a, b])
    folder = tmp_path_factory.mktemp("cli_shape")
    mesh_path, pcd_path = folder / "ell.ply", folder / "ell.pcd"
    write_ply(mesh_path, Mesh(np.asarray(tm.vertices), np.asarray(tm.faces), source="ell"))
    points, _ = trimesh.sample.sample_surface(tm, 256, seed=1)
    write_pcd(pcd_path, np.asarray(points))
    return mesh_path, pcd_path


@pytest.fixture(scope="module")
def features_file(shape_files, tmp_path_factory: pytest.TempPathFactory) -> Path:
    mesh_path, pcd_path = shape_files
    out = tmp_path_factory.mktemp("cli_features") / "ell.npz"
    assert main(["features", str(mesh_path), str(pcd_path), "-o", str(out), *FAST]) == 0
    return out


def test_backbones_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    assert "classical" in out and "dinov2_vits14_offline" in out


def test_features_from_mesh_and_points(features_file: Path, shape_files) -> None:
    shape, header = load_shape_features(features_file, expected={"backbone": "classical"})
    points, _ = read_pcd(shape_files[1])
    assert shape.features.shape[0] == 256
    np.testing.assert_allclose(shape.points, points, atol=1e-6)
    assert header["model_id"] == "ell"
    assert (shape.counts > 0).mean() > 0.9


def test_features_samples_points_when_none_given(shape_files, tmp_path: Path) -> None:
    out = tmp_path / "sampled.npz"
    args = ["features", str(shape_files[0]), "-o", str(out), "--n-points", "200", *FAST]
    assert main(args) == 0
    shape, header = load_shape_features(out)
    assert shape.points.shape == (200, 3)
    assert header["points_file"] is None


def test_predict_writes_json_with_keypoints(features_file: Path, tmp_path: Path) -> None:
    shape, _ = load_shape_features(features_file)
    labelled = np.array([0, 40, 80, 120, 160])
    prototypes = build_prototypes(
        [LabelledShape(shape.features, shape.geodesic_normalised, np.arange(5), labelled, "ell")]
    )
    proto_path = prototypes.save(tmp_path / "proto.npz")
    out = tmp_path / "pred" / "ell.json"
    args = ["predict", "--prototypes", str(proto_path), str(features_file), "-o", str(out)]
    args += ["--steps", "50"]
    assert main(args) == 0
    pred = json.loads(out.read_text())
    assert pred["semantic_ids"] == [0, 1, 2, 3, 4]
    # on the labelled shape itself, most keypoints land on their labelled points, all near
    assert sum(i == j for i, j in zip(pred["indices"], labelled, strict=True)) >= 3
    assert shape.geodesic_normalised[pred["indices"], labelled].max() < 0.15
    assert all(0.0 <= c <= 1.0 for c in pred["confidences"])
    np.testing.assert_allclose(pred["xyz"], shape.points[pred["indices"]])


def test_predict_refuses_features_of_another_layer(
    features_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shape, _ = load_shape_features(features_file)
    prototypes = build_prototypes(
        [LabelledShape(shape.features, shape.geodesic_normalised, np.arange(3), [0, 9, 99], "s")]
    )
    out = tmp_path / "pred.json"
    for layer, status in (("block9", 2), (None, 0)):
        proto_path = prototypes.save(
            tmp_path / f"proto-{layer}.npz", {"backbone": "classical", "layer": layer}
        )
        args = ["predict", "--prototypes", str(proto_path), str(features_file), "-o", str(out)]
        assert main([*args, "--steps", "5"]) == status
    err = capsys.readouterr().err
    assert "from layer 'last_norm'" in err and "'block9'" in err and "--layer block9" in err


def test_missing_mesh_prints_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.ply"
    assert main(["features", str(missing), "-o", str(tmp_path / "x.npz"), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bt3d: error: ")
    assert "nope.ply" in err
    assert not (tmp_path / "x.npz").exists()


def test_unknown_backbone_exits_2(shape_files, tmp_path: Path, capsys) -> None:
    args = ["features", str(shape_files[0]), "-o", str(tmp_path / "x.npz"), "--backbone", "vgg"]
    assert main(args) == 2
    assert "unknown backbone 'vgg'" in capsys.readouterr().err


def test_corrupt_features_file_exits_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    proto = tmp_path / "p.npz"
    assert main(["predict", "--prototypes", str(proto), str(bad), "-o", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert "bad.npz" in err and "corrupt" in err


def test_synthetic_writes_a_dataset(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    assert main(["synthetic", str(out), "--categories", "chair", "--shapes", "2"]) == 0
    assert (out / "annotations" / "chair.json").is_file()
    assert len(list((out / "pcds" / "03001627").glob("*.pcd"))) == 2
