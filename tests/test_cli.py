"""The ``bt3d`` command, called in-process through ``bt3d.cli.main``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from bt3d.cli import main
from bt3d.fewshot import KeypointPrototypes, LabelledShape, build_prototypes
from bt3d.io import read_pcd, read_ply, write_annotations, write_pcd, write_ply
from bt3d.pipeline import load_shape_features
from bt3d.structures import Mesh, ShapeAnnotation

FAST = ["--backbone", "classical", "--layer", "none", "--device", "cpu", "--n-azimuth", "4",
        "--n-polar", "2", "--image-size", "112"]  # fmt: skip


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
    pred = json.loads(out.read_text())["predictions"][0]  # the workflow's layout
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


def _outputs_under(folder: Path) -> list[list[str]]:
    """Every bt3d command with an output, writing under ``folder``; their inputs do not
    exist, so an error about the output shows that it was checked before any work."""
    absent = folder.parent / "absent"
    return [
        ["features", str(absent / "m.ply"), "-o", str(folder / "sub" / "f.npz"), *FAST],
        ["prototypes", str(absent / "f.npz"), "--annotations", str(absent / "a.json"),
         "-o", str(folder / "p.npz")],
        ["predict", "--prototypes", str(absent / "p.npz"), str(absent / "f.npz"),
         "-o", str(folder / "sub" / "o.json")],
        ["synthetic", str(folder / "syn"), "--shapes", "1"],
    ]  # fmt: skip


def test_output_under_a_file_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder\n")
    for args in _outputs_under(blocker):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        out = args[args.index("-o") + 1] if "-o" in args else args[1]
        assert err == (
            f"bt3d: error: {out}: cannot write the output: {blocker} is not a folder\n"
        ), args
    assert blocker.read_text() == "a file, not a folder\n"
    assert main(["predict", "--prototypes", "p", "f", "-o", str(tmp_path)]) == 2
    assert "it is a folder; give a file name" in capsys.readouterr().err


DROP_PRIVILEGES = """
import os, sys
import bt3d.cli
bt3d.cli._parser().parse_args(sys.argv[1:])  # argparse's lazy imports, while readable
if os.geteuid() == 0:  # root writes anywhere: check as an ordinary user
    os.setgid(65534)
    os.setuid(65534)
sys.exit(bt3d.cli.main(sys.argv[1:]))
"""


def test_unwritable_output_folder_is_one_line_exit_2(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="bt3d-ro-"))  # traversable by any user
    try:
        base.chmod(0o755)
        readonly = base / "shared"
        readonly.mkdir(mode=0o555)
        readonly.chmod(0o555)
        for args in _outputs_under(readonly):
            run = subprocess.run(
                [sys.executable, "-c", DROP_PRIVILEGES, *args],
                capture_output=True,
                text=True,
                cwd=base,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            )
            out = args[args.index("-o") + 1] if "-o" in args else args[1]
            assert run.returncode == 2, run.stderr[-2000:]
            assert run.stderr == (
                f"bt3d: error: {out}: cannot write the output: folder {readonly} is not writable\n"
            )
        assert list(readonly.iterdir()) == []
    finally:
        readonly.chmod(0o755)
        import shutil

        shutil.rmtree(base)


def test_synthetic_writes_a_dataset(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    assert main(["synthetic", str(out), "--categories", "chair", "--shapes", "2"]) == 0
    assert (out / "annotations" / "chair.json").is_file()
    assert len(list((out / "pcds" / "03001627").glob("*.pcd"))) == 2


# ------------------------------------------------------------------ bt3d prototypes

# five keypoints of the L mesh (semantic id = row): the ends of the long and of the short
# arm, the outer corner, the middle of the short arm's outer side, of the long arm's top side
ELL_KEYPOINTS = np.array(
    [[-0.3, 0.0, 0.0], [0.25, 0.55, 0.0], [0.3, -0.05, 0.0], [0.3, 0.3, 0.0], [0.0, 0.05, 0.0]]
)
CHAIR = "03001627"


def _annotation(model_id: str, points: np.ndarray, keypoints: np.ndarray) -> ShapeAnnotation:
    """KeypointNet-style record: each keypoint labels its nearest point of ``points``."""
    nearest = np.linalg.norm(points[None, :, :] - keypoints[:, None, :], axis=2).argmin(axis=1)
    k = len(keypoints)
    return ShapeAnnotation(
        class_id=CHAIR,
        model_id=model_id,
        semantic_ids=np.arange(k),
        point_indices=nearest,
        xyz=points[nearest],
        face_indices=np.zeros(k, dtype=np.int64),
        face_uvs=np.tile([1.0, 0.0, 0.0], (k, 1)),
    )


@pytest.fixture(scope="module")
def labelled_set(shape_files, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Features of three labelled copies of the L mesh (moved and scaled, one resampled)
    and of a fourth copy to predict on, plus the annotation file of the labelled three."""
    folder = tmp_path_factory.mktemp("cli_labelled")
    mesh = read_ply(shape_files[0])
    base_points, _ = read_pcd(shape_files[1])
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces)
    copies = {  # model id: (scale, shift, surface sample seed or None for the fixture's)
        "ell": (1.0, (0.0, 0.0, 0.0), None),
        "ell_big": (1.6, (1.0, 2.0, -0.5), None),
        "ell_small": (0.7, (-0.4, 0.1, 0.3), 3),
        "target": (1.3, (-2.0, 0.5, 1.0), 2),
    }
    files, points_of, annotations = {}, {}, []
    for model_id, (scale, shift, seed) in copies.items():
        if seed is None:
            points = base_points.astype(np.float64)
        else:
            points = np.asarray(trimesh.sample.sample_surface(tm, 256, seed=seed)[0])
        points = points * scale + shift
        mesh_path, pcd_path = folder / f"{model_id}.ply", folder / f"{model_id}.pcd"
        write_ply(mesh_path, Mesh(mesh.vertices * scale + shift, mesh.faces, source=model_id))
        write_pcd(pcd_path, points)
        out = folder / f"{model_id}.npz"
        args = ["features", str(mesh_path), str(pcd_path), "-o", str(out), "--normalise"]
        assert main([*args, *FAST]) == 0
        files[model_id], points_of[model_id] = out, read_pcd(pcd_path)[0].astype(np.float64)
        if model_id != "target":
            annotations.append(
                _annotation(model_id, points_of[model_id], ELL_KEYPOINTS * scale + shift)
            )
    ann_path = folder / "chair.json"
    write_annotations(ann_path, annotations)
    return {
        "files": files,
        "points": points_of,
        "annotations": ann_path,
        "target_keypoints": ELL_KEYPOINTS * 1.3 + np.array((-2.0, 0.5, 1.0)),
    }


def _prototypes_args(files: list[Path], annotations: list[Path], out: Path) -> list[str]:
    args = ["prototypes", *map(str, files), "-o", str(out)]
    for ann in annotations:
        args += ["--annotations", str(ann)]
    return args


def test_prototypes_then_predict_finds_the_labelled_keypoints(
    labelled_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = labelled_set["files"]
    proto_path = tmp_path / "chair.npz"
    labelled = [files["ell"], files["ell_big"], files["ell_small"]]
    assert main(_prototypes_args(labelled, [labelled_set["annotations"]], proto_path)) == 0
    assert "5 keypoints from 3 labelled shapes" in capsys.readouterr().out
    header = KeypointPrototypes.read_header(proto_path)
    assert header["kind"] == "prototypes" and header["category"] == "chair"
    assert header["shot_ids"] == ["ell", "ell_big", "ell_small"]
    assert header["backbone"] == "classical" and header["layer"] is None
    assert header["reduction"] == "mean" and len(header["config_hash"]) == 12
    prototypes = KeypointPrototypes.load(proto_path)
    np.testing.assert_array_equal(prototypes.semantic_ids, np.arange(5))
    assert (np.diag(prototypes.pair_counts) == 3).all()

    out = tmp_path / "target.json"
    args = ["predict", "--prototypes", str(proto_path), str(files["target"]), "-o", str(out)]
    assert main([*args, "--steps", "100"]) == 0
    pred = json.loads(out.read_text())["predictions"][0]
    assert pred["model_id"] == "target" and pred["semantic_ids"] == [0, 1, 2, 3, 4]
    # distance of each predicted point to its keypoint on the target (its own, unlabelled,
    # resampled cloud), as a share of the target's bounding-box diagonal
    points = labelled_set["points"]["target"]
    diagonal = np.linalg.norm(points.max(axis=0) - points.min(axis=0))

    def errors(indices: np.ndarray) -> np.ndarray:
        return np.linalg.norm(points[indices] - labelled_set["target_keypoints"], axis=1) / diagonal

    found = errors(np.asarray(pred["indices"]))
    assert found.max() < 0.1, found
    # --normalise only changes how the shape is rendered: xyz are in the target's own frame
    np.testing.assert_allclose(pred["xyz"], points[pred["indices"]], atol=1e-5)
    # a random prediction is nowhere near: the criterion is not met by chance
    rng = np.random.default_rng(0)
    random_max = [errors(rng.choice(len(points), 5, replace=False)).max() for _ in range(200)]
    assert min(random_max) > 0.1


def test_prototypes_sum_reduction_and_several_annotation_files(
    labelled_set: dict, tmp_path: Path
) -> None:
    """Records split over two annotation files; --reduction sum adds the pair distances."""
    files, records = labelled_set["files"], json.loads(labelled_set["annotations"].read_text())
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(records[:1]))
    second.write_text(json.dumps(records[1:]))
    labelled = [files["ell"], files["ell_big"]]
    mean, total = tmp_path / "mean.npz", tmp_path / "sum.npz"
    assert main(_prototypes_args(labelled, [first, second], mean)) == 0
    assert main([*_prototypes_args(labelled, [first, second], total), "--reduction", "sum"]) == 0
    mean_p, sum_p = KeypointPrototypes.load(mean), KeypointPrototypes.load(total)
    assert sum_p.reduction == "sum" and KeypointPrototypes.read_header(total)["reduction"] == "sum"
    np.testing.assert_allclose(sum_p.target_distances, 2 * mean_p.target_distances)
    assert mean_p.target_distances[0, 1] > 0.3  # the two arm ends are far apart


def _expect_error(args: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bt3d: error: "), err
    assert not out.exists() and not list(out.parent.glob(f"*{out.name}*"))
    return err


def test_prototypes_model_id_not_annotated(
    labelled_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files, out = labelled_set["files"], tmp_path / "p.npz"
    args = _prototypes_args([files["ell"], files["target"]], [labelled_set["annotations"]], out)
    err = _expect_error(args, out, capsys)
    assert "target.npz: model 'target' is not in the annotations" in err
    assert "chair.json" in err and "--model-id" in err


def test_features_model_id_option_names_the_shape(
    labelled_set: dict, shape_files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bt3d features --model-id` overrides the mesh file name; the record is then found."""
    feats = tmp_path / "renamed.npz"
    args = ["features", str(shape_files[0]), str(shape_files[1]), "-o", str(feats), *FAST]
    assert main([*args, "--model-id", "ell_small"]) == 0
    assert load_shape_features(feats)[1]["model_id"] == "ell_small"
    out = tmp_path / "p.npz"
    # ell_small's record indexes a cloud of the same size, but not these points: refused
    err = _expect_error(_prototypes_args([feats], [labelled_set["annotations"]], out), out, capsys)
    assert "model ell_small keypoint 0: xyz" in err and "renamed.npz" in err
    assert "the annotation's point indices refer to another point cloud" in err
    # given twice for one model id (the file and ell_small's own): refused, both named
    out2 = tmp_path / "p2.npz"
    files = [labelled_set["files"]["ell_small"], feats]
    err = _expect_error(_prototypes_args(files, [labelled_set["annotations"]], out2), out2, capsys)
    assert "renamed.npz: model ell_small is given twice" in err
    assert f"also by {labelled_set['files']['ell_small']}" in err


def test_prototypes_refuse_mixed_backbones_layers_and_widths(
    labelled_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bt3d.pipeline import save_shape_features

    files, ann = labelled_set["files"], labelled_set["annotations"]
    shape, header = load_shape_features(files["ell_big"])
    variants = {
        "backbone": ({**header, "backbone": "dinov2_vits14_offline"}, shape),
        "layer": ({**header, "layer": "block9"}, shape),
        "channels": (header, dataclasses.replace(shape, features=shape.features[:, :-1])),
    }
    for what, (changed_header, changed_shape) in variants.items():
        odd = save_shape_features(tmp_path / f"ell_big-{what}.npz", changed_shape, changed_header)
        out = tmp_path / f"p-{what}.npz"
        err = _expect_error(_prototypes_args([files["ell"], odd], [ann], out), out, capsys)
        assert f"{odd}: features" in err and str(files["ell"]) in err, err
    # a missing layer and last_norm are the same layer
    same = save_shape_features(tmp_path / "last.npz", shape, {**header, "layer": "last_norm"})
    assert main(_prototypes_args([files["ell"], same], [ann], tmp_path / "ok.npz")) == 0


def test_prototypes_point_index_out_of_range(
    labelled_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = json.loads(labelled_set["annotations"].read_text())
    records[1]["keypoints"][2]["pcd_info"]["point_index"] = 256
    ann = tmp_path / "bad.json"
    ann.write_text(json.dumps(records))
    out = tmp_path / "p.npz"
    files = labelled_set["files"]
    err = _expect_error(_prototypes_args([files["ell"], files["ell_big"]], [ann], out), out, capsys)
    assert f"{ann} record 1 (model ell_big) keypoint 2: point_index 256 out of range" in err
    assert f"256 points of {files['ell_big']}" in err


def test_prototypes_model_annotated_twice(
    labelled_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ann, out = labelled_set["annotations"], tmp_path / "p.npz"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(json.loads(ann.read_text())[:1]))
    err = _expect_error(
        _prototypes_args([labelled_set["files"]["ell"]], [ann, other], out), out, capsys
    )
    assert f"{other} record 0: model ell is annotated twice (also in {ann} record 0)" in err
    err = _expect_error(
        _prototypes_args([labelled_set["files"]["ell"]], [ann, ann], out), out, capsys
    )
    assert f"{ann}: annotation file given twice" in err


def test_prototypes_refuse_shapes_of_two_classes(
    labelled_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = json.loads(labelled_set["annotations"].read_text())
    records[1]["class_id"] = "04379243"
    ann, out = tmp_path / "mixed.json", tmp_path / "p.npz"
    ann.write_text(json.dumps(records))
    files = labelled_set["files"]
    err = _expect_error(_prototypes_args([files["ell"], files["ell_big"]], [ann], out), out, capsys)
    assert "ell_big.npz: model ell_big is of class 04379243" in err and "ell.npz" in err


def test_prototypes_missing_files(
    labelled_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ann, out = labelled_set["annotations"], tmp_path / "p.npz"
    missing = tmp_path / "nope.npz"
    err = _expect_error(
        _prototypes_args([labelled_set["files"]["ell"], missing], [ann], out), out, capsys
    )
    assert f"{missing}: labelled features file does not exist" in err
    err = _expect_error(
        _prototypes_args([labelled_set["files"]["ell"]], [tmp_path / "no.json"], out), out, capsys
    )
    assert "no.json" in err


def test_prototypes_error_leaves_an_existing_output_alone(
    labelled_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files, ann, out = labelled_set["files"], labelled_set["annotations"], tmp_path / "p.npz"
    assert main(_prototypes_args([files["ell"]], [ann], out)) == 0
    before = out.read_bytes()
    assert main(_prototypes_args([files["ell"], files["target"]], [ann], out)) == 2
    assert out.read_bytes() == before and sorted(tmp_path.iterdir()) == [out]


def test_prototypes_refuse_shapes_without_keypoints(
    labelled_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = json.loads(labelled_set["annotations"].read_text())
    records[0]["keypoints"] = []
    ann, out = tmp_path / "empty.json", tmp_path / "p.npz"
    ann.write_text(json.dumps(records))
    err = _expect_error(_prototypes_args([labelled_set["files"]["ell"]], [ann], out), out, capsys)
    assert f"{ann}: the labelled shapes have no keypoints annotated" in err


def test_features_refuse_a_point_cloud_off_the_mesh(
    shape_files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Points in other units than the mesh (metres beside millimetres) name both files."""
    mesh_path, pcd_path = shape_files
    points, _ = read_pcd(pcd_path)
    metres = tmp_path / "ell-metres.pcd"
    write_pcd(metres, points / 1000.0)
    out = tmp_path / "f.npz"
    err = _expect_error(
        ["features", str(mesh_path), str(metres), "-o", str(out), *FAST], out, capsys
    )
    assert f"{metres} does not lie on {mesh_path}: point" in err
    assert "in the same frame and units" in err


def test_features_with_the_papers_config_and_overrides(shared_data: Path, tmp_path: Path) -> None:
    """`bt3d features ... --config config/paper.yaml --backbone dinov2_vits14_offline --layer
    last_norm`: the paper's conventions (5 visibility layers, float32, shapes as stored) with
    the offline backbone, options over the file; the library gives the same bytes."""
    from bt3d.backbones import get_backbone
    from bt3d.io import load_mesh, load_points
    from bt3d.pipeline import extract_shape_features, shape_geodesic
    from bt3d.settings import FeatureSettings, GeodesicSettings, load_config

    chair = "88382b877be91b2a572f8e1c1caad99e"
    sample = shared_data / "keypointnet-sample"
    mesh_path = sample / "ShapeNetCore.v2.ply" / "03001627" / f"{chair}.ply"
    pcd_path = sample / "pcds" / "03001627" / f"{chair}.pcd"
    paper = Path(__file__).resolve().parents[1] / "config" / "paper.yaml"
    out = tmp_path / "paper.npz"
    args = ["features", str(mesh_path), str(pcd_path), "-o", str(out), "--config", str(paper),
            "--backbone", "dinov2_vits14_offline", "--layer", "last_norm", "--device", "cpu",
            "--n-azimuth", "3", "--n-polar", "1", "--image-size", "112"]  # fmt: skip
    assert main(args) == 0
    shape, header = load_shape_features(out)
    settings = header["settings"]["features"]
    assert settings["visibility_layers"] == 5 and settings["normalise"] is False
    assert settings["backbone"]["precision"] == "float32"
    assert settings["backbone"]["name"] == "dinov2_vits14_offline"
    assert settings["render"]["n_azimuth"] == 3 and settings["render"]["fov"] == 60
    config = load_config(
        paper,
        {
            "backbone": {"name": "dinov2_vits14_offline", "layer": "last_norm"},
            "render": {"n_azimuth": 3, "n_polar": 1, "image_size": 112},
        },
    )
    mesh, points = load_mesh(mesh_path), load_points(pcd_path)
    raw = shape_geodesic(mesh, points, GeodesicSettings.from_config(config), chair)
    backbone = get_backbone("dinov2_vits14_offline", "cpu", layer="last_norm")
    ours = extract_shape_features(mesh, points, backbone, FeatureSettings.from_config(config), raw)
    assert ours.features.tobytes() == shape.features.tobytes()
    assert (shape.counts > 0).mean() > 0.9  # five layers: nearly every point seen
