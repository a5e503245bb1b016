"""Fault injection on the real workflow: bad inputs, a killed run, corrupted artifacts.

Every scenario runs the snakemake CLI on config/test.yaml in a temporary folder. One
uninterrupted run (module fixture) is the reference; each test works on a copy of it, or of
its dataset only. Slow (a few minutes on two cores); CI runs them (`make test`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bt3d.cache import load_arrays, save_arrays, save_json_atomic
from bt3d.io import read_pcd, write_pcd

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
TEST_CONFIG = REPO / "config" / "test.yaml"
DATA = Path("data/synthetic-test")
RESULTS = Path("results/test")
CHAIR = "03001627"

pytestmark = pytest.mark.slow


def command(workdir: Path, *args: str, configs: tuple[Path, ...] = ()) -> list[str]:
    # config/test.yaml's classical backbone takes no ViT layer (config.yaml may name one)
    pinned = workdir / ".classical.yaml"
    pinned.write_text("backbone:\n  layer: null\n")
    return [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(TEST_CONFIG), str(pinned), *map(str, configs), *args]  # fmt: skip


def snakemake(workdir: Path, *args: str, configs: tuple[Path, ...] = (), ok: bool = True) -> str:
    """Run snakemake in ``workdir``; assert its exit status is zero (``ok``) or not; return
    its output (stdout + stderr)."""
    result = subprocess.run(
        command(workdir, *args, configs=configs),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=workdir,
    )
    out = result.stdout + result.stderr
    assert (result.returncode == 0) == ok, f"exit {result.returncode}:\n{out[-4000:]}"
    return out


def planned(workdir: Path, *args: str) -> dict[str, int]:
    """Jobs per rule that a dry run plans."""
    out = snakemake(workdir, "-n", *args)
    return {
        name: int(count)
        for name, count in re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.MULTILINE)
        if name != "total"
    }


def no_temporaries(workdir: Path) -> list[Path]:
    return sorted((workdir / RESULTS).rglob(".*.tmp")) if (workdir / RESULTS).exists() else []


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed, uninterrupted run of config/test.yaml (the reference)."""
    workdir = tmp_path_factory.mktemp("reference")
    snakemake(workdir, "--cores", "2")
    return workdir


@pytest.fixture
def run_copy(done: Path, tmp_path: Path) -> Path:
    """A private copy of the completed run (files, mtimes and .snakemake metadata)."""
    return Path(shutil.copytree(done, tmp_path / "run", symlinks=True))


@pytest.fixture
def data_copy(done: Path, tmp_path: Path) -> Path:
    """A fresh working folder holding only the reference run's dataset."""
    workdir = tmp_path / "fresh"
    shutil.copytree(done / DATA, workdir / DATA)
    return workdir


def shard_models(done: Path, category: str = "chair", shard: int = 0) -> list[str]:
    arrays, _ = load_arrays(done / RESULTS / "geodesics" / category / f"shard-{shard}.npz")
    return [str(m) for m in arrays["model_ids"]]


# ---------------------------------------------------------------------------- reference


def test_reference_run_is_complete_and_up_to_date(run_copy: Path) -> None:
    assert planned(run_copy) == {}
    out = subprocess.run(
        [sys.executable, "-m", "bt3d.cli", "verify", str(run_copy / RESULTS)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    assert ", 0 bad" in out


def test_seed_and_config_hash_are_recorded(done: Path) -> None:
    manifest = json.loads((done / RESULTS / "manifest.json").read_text())
    assert manifest["seeds"]["optimiser"] == 0 and manifest["config"]["run"] == "test"
    (config_hash,) = manifest["predictions_config_hash"].values()
    assert re.fullmatch(r"[0-9a-f]{12}", config_hash)
    pred = json.loads((done / RESULTS / "predictions/bt3d/chair/set-0/shard-0.json").read_text())
    assert pred["header"]["seed"] == 0
    assert pred["header"]["config_hash"] == config_hash


def test_predictions_are_bit_identical_when_recomputed(run_copy: Path, done: Path) -> None:
    targets = [str(RESULTS / f"predictions/bt3d/{c}/set-0/shard-{s}.json")
               for c in ("airplane", "chair") for s in (0, 1)]  # fmt: skip
    snakemake(run_copy, "--cores", "2", "--forcerun", "optimize", "--", *targets)
    for target in targets:
        assert (run_copy / target).read_bytes() == (done / target).read_bytes(), target


def test_keypoints_never_in_the_shots_are_reported_not_fatal(done: Path) -> None:
    # The synthetic chairs have semantic ids that none of the 3 shots carries.
    (metrics,) = json.loads((done / RESULTS / "metrics/bt3d/chair.json").read_text())["shot_sets"]
    assert metrics["unseen_keypoints"] > 0 and metrics["unseen_semantic_ids"]
    log = (done / "logs" / "test" / "evaluate" / "bt3d" / "chair.log").read_text()
    line = (
        f"WARNING: chair set-0: {metrics['unseen_keypoints']} of "
        f"{metrics['ground_truth_keypoints']} ground-truth keypoints"
    )
    assert line in log and "count as misses in PCK" in log
    note = (done / RESULTS / "tables" / "miou.md").read_text()
    assert f"Note: chair: {metrics['unseen_keypoints']} of" in note
    assert "PCK counts them as misses" in note


# ----------------------------------------------------------------------------- kill


def test_killed_run_leaves_no_complete_looking_shard_and_resumes(
    done: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "killed"
    workdir.mkdir()
    proc = subprocess.Popen(
        command(workdir, "--cores", "2"),
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    logs = workdir / "logs" / "test" / "features" / "bt3d"
    deadline = time.monotonic() + 300
    try:
        while not (logs.is_dir() and any(logs.glob("*.log"))):
            assert proc.poll() is None, "snakemake ended before any features job started"
            assert time.monotonic() < deadline, "no features job started within 300 s"
            time.sleep(0.2)
        time.sleep(1.0)  # the job is importing torch / rendering
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    started = sorted(p.stem for p in logs.glob("*.log"))
    features = sorted((workdir / RESULTS / "features").rglob("*.npz"))
    for path in features:  # any shard file present must be complete and valid
        load_arrays(path)
    shard_file = {  # log bt3d/chair-shard-0.log: features/bt3d/chair/shard-0.npz
        s: workdir / RESULTS / "features" / "bt3d" / f"{'/'.join(s.split('-', 1))}.npz"
        for s in started
    }
    running = [s for s, path in shard_file.items() if not path.exists()]
    assert running, f"the kill came after every started job finished: {started}"

    snakemake(workdir, "--unlock")
    # Every missing output is rebuilt. A job whose atomic rename landed just before the kill,
    # but that snakemake had not yet recorded as finished, is marked incomplete and is rerun
    # too; with --cores 2 at most two jobs were in flight, so at most two such extra jobs.
    missing = {}
    for rule, pattern, total in (("geodesics", "geodesics/*/*.npz", 6),
                                 ("features", "features/*/*/*.npz", 6)):  # fmt: skip
        missing[rule] = total - len(list((workdir / RESULTS).glob(pattern)))
    plan = planned(workdir, "--rerun-incomplete")
    rerun = {rule: plan.get(rule, 0) for rule in missing}
    assert "synthetic" not in plan, plan
    assert all(rerun[r] >= missing[r] for r in missing), (rerun, missing)
    assert sum(rerun.values()) <= sum(missing.values()) + 2, (rerun, missing)

    out = snakemake(workdir, "--cores", "2", "--rerun-incomplete")
    ran = re.findall(r"^(?:local)?rule (\w+):", out, flags=re.MULTILINE)
    assert {r: ran.count(r) for r in missing} == rerun
    assert no_temporaries(workdir) == []
    for table in ("miou.csv", "pck.csv", "per_keypoint.csv", "baseline.csv"):
        after = (workdir / RESULTS / "tables" / table).read_bytes()
        assert after == (done / RESULTS / "tables" / table).read_bytes(), table


# -------------------------------------------------------------------------- corrupt

FEATURES = RESULTS / "features" / "bt3d" / "chair" / "shots.npz"  # read by the prototypes rule


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 8):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def foreign_header(path: Path) -> None:
    arrays, header = load_arrays(path)
    save_arrays(path, arrays, {**header, "config_hash": "000000000000"})


def test_truncated_feature_file_is_detected_then_rebuilt(run_copy: Path, done: Path) -> None:
    truncate(run_copy / FEATURES)
    failed = snakemake(run_copy, "--cores", "2", ok=False)
    assert f"[prototypes] CacheError: {FEATURES}: truncated or corrupt .npz" in failed
    assert f"deleted {FEATURES} and " in failed and "rerun to rebuild them" in failed
    assert not (run_copy / FEATURES).exists()
    plan = planned(run_copy)
    assert plan.get("features") == 1 and "geodesics" not in plan
    assert plan.get("prototypes") == 1 and plan.get("optimize") == 2
    snakemake(run_copy, "--cores", "2")
    for table in ("miou.csv", "pck.csv", "per_keypoint.csv", "baseline.csv"):
        after = (run_copy / RESULTS / "tables" / table).read_bytes()
        assert after == (done / RESULTS / "tables" / table).read_bytes(), table


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (flip_bytes, "truncated or corrupt .npz (BadZipFile: Bad CRC-32"),
        (foreign_header, "header field 'config_hash' is '000000000000', expected"),
    ],
)
def test_corrupt_feature_file_is_detected_and_deleted(run_copy: Path, corrupt, message) -> None:  # noqa: ANN001
    corrupt(run_copy / FEATURES)
    target = str(RESULTS / "prototypes" / "bt3d" / "chair" / "set-0.npz")
    failed = snakemake(run_copy, "--cores", "1", target, ok=False)
    assert f"[prototypes] CacheError: {FEATURES}: {message}" in failed
    assert not (run_copy / FEATURES).exists()
    plan = planned(run_copy)
    assert plan.get("features") == 1 and plan.get("prototypes") == 1
    assert "geodesics" not in plan and plan.get("evaluate") == 1


def test_verify_command_finds_and_deletes_corrupt_artifacts(run_copy: Path) -> None:
    flip_bytes(run_copy / FEATURES)
    stray = run_copy / RESULTS / "features" / "bt3d" / "chair" / ".shard-0.npz.abc.tmp"
    stray.write_bytes(b"partial")
    verify = [sys.executable, "-m", "bt3d.cli", "verify", str(run_copy / RESULTS)]
    found = subprocess.run(verify, capture_output=True, text=True, cwd=REPO)
    assert found.returncode == 1
    assert f"bad: {run_copy / FEATURES}: truncated or corrupt .npz" in found.stdout
    assert "temporary file of an interrupted write" in found.stdout
    subprocess.run([*verify, "--delete"], check=True, capture_output=True, cwd=REPO)
    assert not (run_copy / FEATURES).exists() and not stray.exists()
    assert planned(run_copy).get("features") == 1


PREDICTIONS = RESULTS / "predictions" / "bt3d" / "chair" / "set-0" / "shard-1.json"
METRICS_TARGET = str(RESULTS / "metrics" / "bt3d" / "chair.json")


def edit_first_index(path: Path, change, reseal: bool) -> tuple[str, int]:  # noqa: ANN001
    """Set the first predicted point index of ``path`` to ``change(index)``, keeping the file's
    layout (a hand edit) or writing it through the sealing writer (``reseal``: an artifact
    consistent in itself but wrong). Returns the model id and the new index."""
    content = json.loads(path.read_text())
    first = content["predictions"][0]
    first["indices"][0] = change(first["indices"][0])
    if reseal:
        save_json_atomic(path, content)
    else:
        path.write_text(json.dumps(content, indent=1) + "\n")
    return first["model_id"], first["indices"][0]


def test_flipped_digit_in_predictions_is_caught_by_verify_and_evaluation(
    run_copy: Path, done: Path
) -> None:
    edit_first_index(run_copy / PREDICTIONS, lambda i: i + 1 if i % 10 < 9 else i - 1, False)
    verify = [sys.executable, "-m", "bt3d.cli", "verify", str(run_copy / RESULTS)]
    found = subprocess.run(verify, capture_output=True, text=True, cwd=REPO)
    assert found.returncode == 1
    assert f"bad: {run_copy / PREDICTIONS}: content does not match its checksum" in found.stdout
    failed = snakemake(run_copy, "--cores", "1", METRICS_TARGET, ok=False)
    assert f"[evaluate] CacheError: {PREDICTIONS}: content does not match its checksum" in failed
    assert f"deleted {PREDICTIONS} and " in failed
    assert not (run_copy / PREDICTIONS).exists()
    assert not (run_copy / RESULTS / "tables" / "miou.csv").exists()  # no stale table left
    plan = planned(run_copy)
    assert plan.get("optimize") == 1 and plan.get("evaluate") == 1 and "features" not in plan
    snakemake(run_copy, "--cores", "2")
    for table in ("miou.csv", "pck.csv", "per_keypoint.csv", "baseline.csv"):
        after = (run_copy / RESULTS / "tables" / table).read_bytes()
        assert after == (done / RESULTS / "tables" / table).read_bytes(), table


def test_prediction_index_out_of_range_names_file_and_model(run_copy: Path) -> None:
    model, _ = edit_first_index(run_copy / PREDICTIONS, lambda i: 5000, True)
    failed = snakemake(run_copy, "--cores", "1", METRICS_TARGET, ok=False)
    assert (
        f"[evaluate] CacheError: {PREDICTIONS}: model {model}: point index 5000 out of range "
        f"for 2048 points; deleted {PREDICTIONS} and " in failed
    ), failed[-2000:]
    assert not (run_copy / PREDICTIONS).exists()
    assert not (run_copy / RESULTS / "tables" / "miou.csv").exists()


# ------------------------------------------------------------------------ bad inputs


def edit_ply(path: Path, edit) -> None:  # noqa: ANN001
    """Rewrite an ASCII PLY: ``edit(vertex_lines, face_lines) -> (vertex_lines, face_lines)``."""
    lines = path.read_text().splitlines()
    end = lines.index("end_header")
    header, body = lines[: end + 1], lines[end + 1 :]
    n_vertex = int(next(line.split()[2] for line in header if line.startswith("element vertex")))
    vertices, faces = edit(body[:n_vertex], body[n_vertex:])
    header = [
        f"element face {len(faces)}" if line.startswith("element face") else line for line in header
    ]
    path.write_text("\n".join(header + vertices + faces) + "\n")


def same_point(vertices: list[str], faces: list[str]) -> tuple[list[str], list[str]]:
    return [" ".join(["0.5", "0.5", "0.5", *v.split()[3:]]) for v in vertices], faces


def nan_vertex(vertices: list[str], faces: list[str]) -> tuple[list[str], list[str]]:
    return [" ".join(["nan", *vertices[0].split()[1:]]), *vertices[1:]], faces


def edit_annotations(path: Path, edit) -> None:  # noqa: ANN001
    records = json.loads(path.read_text())
    path.write_text(json.dumps(edit(records)))


def point_out_of_range(model: str):  # noqa: ANN201
    def edit(records: list) -> list:
        record = next(r for r in records if r["model_id"] == model)
        record["keypoints"][0]["pcd_info"]["point_index"] = 5000
        return records

    return edit


GEODESICS_TARGET = str(RESULTS / "geodesics" / "chair" / "shard-0.npz")
FEATURES_TARGET = str(RESULTS / "features" / "bt3d" / "chair" / "shard-0.npz")


def pcd(model: str) -> Path:
    return DATA / "pcds" / CHAIR / f"{model}.pcd"


def ply(model: str) -> Path:
    return DATA / "ShapeNetCore.v2.ply" / CHAIR / f"{model}.ply"


# (name, mutate(workdir, model), expected message with {pcd}, {ply}, {ann} placeholders)
POINT_CLOUD_CASES = [
    ("missing PCD", lambda w, m: (w / pcd(m)).unlink(),
     "DataError: data/synthetic-test: dataset is incomplete for chair: missing 1 "
     "files: pcds/03001627/{model}.pcd. Restore them (e.g. `dvc pull`), or set "
     "dataset.missing_shapes: skip"),
    ("truncated PCD", lambda w, m: truncate(w / pcd(m)),
     "[geodesics] DataError: {pcd}: truncated PCD: POINTS says 2048, found"),
    ("wrong point count", lambda w, m: write_pcd(w / pcd(m), read_pcd(w / pcd(m))[0][:2000]),
     "[geodesics] DataError: {pcd}: expected 2048 points, found 2000"),
    ("missing PLY", lambda w, m: (w / ply(m)).unlink(),
     "DataError: data/synthetic-test: dataset is incomplete for chair: missing 1 "
     "files: ShapeNetCore.v2.ply/03001627/{model}.ply"),
    ("keypoint index out of range",
     lambda w, m: edit_annotations(w / DATA / "annotations/chair.json", point_out_of_range(m)),
     "[geodesics] DataError: {ann} record {record} (model {model}) keypoint 0: point_index "
     "5000 out of range for 2048 points"),
    ("duplicate model id",
     lambda w, m: edit_annotations(w / DATA / "annotations/chair.json", lambda r: r + r[:1]),
     "DataError: {ann} record 5: model"),
]  # fmt: skip

MESH_CASES = [
    # the geodesics job reads the mesh first (to check that the point cloud lies on it)
    ("truncated PLY", lambda w, m: truncate(w / ply(m)),
     "[geodesics] DataError: {ply}: truncated PLY: element vertex needs"),
    ("mesh with no faces", lambda w, m: edit_ply(w / ply(m), lambda v, f: (v, [])),
     "[geodesics] DataError: {ply}: PLY has no faces (a triangle mesh is required)"),
    ("degenerate vertices", lambda w, m: edit_ply(w / ply(m), same_point),
     "[geodesics] DataError: {ply}: degenerate mesh: all"),
    ("non-finite vertex", lambda w, m: edit_ply(w / ply(m), nan_vertex),
     "[geodesics] DataError: {ply}: vertex 0 is not finite [nan, "),
]  # fmt: skip


def expected_text(template: str, model: str, done: Path) -> str:
    ann = DATA / "annotations" / "chair.json"
    record = [r["model_id"] for r in json.loads((done / ann).read_text())].index(model)
    return template.format(model=model, pcd=pcd(model), ply=ply(model), ann=ann, record=record)


@pytest.mark.parametrize(("name", "mutate", "message"), POINT_CLOUD_CASES,
                         ids=[c[0] for c in POINT_CLOUD_CASES])  # fmt: skip
def test_bad_point_cloud_or_annotation(data_copy: Path, done: Path, name, mutate, message) -> None:  # noqa: ANN001
    model = shard_models(done)[0]
    mutate(data_copy, model)
    strict = data_copy / "strict.yaml"  # config.yaml skips shapes without files; stop instead
    strict.write_text("dataset:\n  missing_shapes: error\n")
    failed = snakemake(data_copy, "--cores", "1", GEODESICS_TARGET, configs=(strict,), ok=False)
    assert expected_text(message, model, done) in failed, failed[-2000:]
    assert not (data_copy / GEODESICS_TARGET).exists() and no_temporaries(data_copy) == []


@pytest.mark.parametrize(("name", "mutate", "message"), MESH_CASES,
                         ids=[c[0] for c in MESH_CASES])  # fmt: skip
def test_bad_mesh(run_copy: Path, done: Path, name, mutate, message) -> None:  # noqa: ANN001
    model = shard_models(done)[0]
    mutate(run_copy, model)
    failed = snakemake(
        run_copy, "--cores", "1", "--forcerun", "features", "--", FEATURES_TARGET, ok=False
    )
    assert expected_text(message, model, done) in failed, failed[-2000:]
    features = (run_copy / FEATURES_TARGET).read_bytes()  # never recomputed from the bad mesh
    assert features == (done / FEATURES_TARGET).read_bytes() and no_temporaries(run_copy) == []


def write_checkpoint(workdir: Path) -> Path:
    import torch

    path = workdir / "wrong.pth"
    torch.save({"pos_embed": torch.zeros(1, 5, 7), "cls_token": torch.zeros(1, 1, 7)}, path)
    return path


BACKBONE_CASES = [
    ("unknown backbone", "backbone:\n  name: no_such_backbone\n",  # at start, before any job
     "BackboneError: unknown backbone 'no_such_backbone'"),
    ("checkpoint that does not exist",
     "backbone:\n  name: dinov2_vits14\n  checkpoint: missing.pth\n",
     "[features] BackboneError: backbone.checkpoint missing.pth does not exist"),
    ("checkpoint with wrong shapes",
     "backbone:\n  name: dinov2_vits14\n  checkpoint: wrong.pth\n",
     "[features] BackboneError: checkpoint wrong.pth does not fit ViTConfig(embed_dim=384"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "override", "message"), BACKBONE_CASES,
                         ids=[c[0] for c in BACKBONE_CASES])  # fmt: skip
def test_bad_backbone(run_copy: Path, name, override, message) -> None:  # noqa: ANN001
    write_checkpoint(run_copy)
    config = run_copy / "backbone.yaml"
    config.write_text(override)
    before = (run_copy / FEATURES_TARGET).read_bytes()
    failed = snakemake(run_copy, "--cores", "1", FEATURES_TARGET, configs=(config,), ok=False)
    assert message in failed, failed[-2000:]
    if message.startswith("[features]"):  # the job ran and failed: its output is gone
        assert not (run_copy / FEATURES_TARGET).exists()
    else:  # stopped at start: no output changed
        assert (run_copy / FEATURES_TARGET).read_bytes() == before
    assert no_temporaries(run_copy) == []


def test_category_missing_from_dataset_fails_before_any_job(data_copy: Path) -> None:
    config = data_copy / "kp.yaml"
    config.write_text(
        "dataset:\n  name: keypointnet\n  root: data/synthetic-test\n"
        "  categories: [airplane, chair, table]\n"
    )
    failed = snakemake(data_copy, "--cores", "1", configs=(config,), ok=False)
    assert (
        "dataset.categories: table not in the dataset (data/synthetic-test/benchmark_indices.csv "
        "lists: airplane, chair)" in failed
    )
    assert not (data_copy / "results").exists() and not (data_copy / "logs").exists()


def test_fewer_labelled_shapes_than_shots(data_copy: Path) -> None:
    config = data_copy / "shots.yaml"
    config.write_text("dataset:\n  shots: 6\n")
    failed = snakemake(data_copy, "--cores", "1", GEODESICS_TARGET, configs=(config,), ok=False)
    assert (  # at start, before any job
        "dataset.synthetic.shapes_per_category 5 leaves no test shape after dataset.offset 0 + "
        "dataset.shots 6" in failed
    )
    assert not (data_copy / GEODESICS_TARGET).exists()


# ------------------------------------------------------------------- changed shape files


def rescale_shape(workdir: Path, model: str, factor: float) -> None:
    """Replace a shape's point cloud and mesh by copies scaled by ``factor`` (the annotation
    still fits), keeping the old files' time stamps, as a restored backup would."""
    from dataclasses import replace

    from bt3d.io import read_ply, write_ply

    points, colors = read_pcd(workdir / pcd(model))
    mesh = read_ply(workdir / ply(model))
    scaled = replace(mesh, vertices=mesh.vertices * factor)
    for path, rewrite in (
        (workdir / pcd(model), lambda p: write_pcd(p, points * factor, colors)),
        (workdir / ply(model), lambda p: write_ply(p, scaled)),
    ):
        stamp = path.stat()
        rewrite(path)
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def test_replaced_shape_reruns_exactly_its_part(run_copy: Path, done: Path, tmp_path: Path) -> None:
    model = shard_models(done, shard=1)[0]
    rescale_shape(run_copy, model, 1.003)
    plan = planned(run_copy)
    expected = {"geodesics": 1, "features": 1, "optimize": 1, "evaluate": 1,
                "plot_keypoints": 1, "keypoint_views": 1, "worst_cases": 1,
                "aggregate": 1, "plot_curves": 1, "all": 1}  # fmt: skip
    assert plan == expected, plan
    out = snakemake(run_copy, "--cores", "2")
    ran = re.findall(r"^(?:local)?rule (\w+):", out, flags=re.MULTILINE)
    assert "prototypes" not in ran and ran.count("features") == 1
    log = (run_copy / "logs" / "test" / "features" / "bt3d" / "chair-shard-1.log").read_text()
    assert model in log
    assert planned(run_copy) == {}
    # the tables equal those of a clean run on the changed data
    clean = tmp_path / "clean"
    shutil.copytree(run_copy / DATA, clean / DATA)
    snakemake(clean, "--cores", "2")
    for table in ("miou.csv", "pck.csv", "per_keypoint.csv", "baseline.csv"):
        after = (run_copy / RESULTS / "tables" / table).read_bytes()
        assert after == (clean / RESULTS / "tables" / table).read_bytes(), table


def test_yaml_syntax_error_in_config_names_file_and_line(tmp_path: Path) -> None:
    # Snakemake's own message for a bad config.yaml ("Config file is not valid JSON or YAML")
    # names neither; the workflow checks config.yaml's syntax before loading it.
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("Snakefile", "config.yaml", "workflow", "scripts"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, copy / name)
    config = copy / "config.yaml"
    lines = config.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("run:"))
    lines[row] = lines[row].replace("run: ", "run: [", 1)
    config.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [SNAKEMAKE, "-n", "--snakefile", str(copy / "Snakefile"), "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0
    following = next(i for i in range(row + 1, len(lines)) if lines[i].strip()) + 1
    assert (
        f"{config}:{following}: YAML syntax error: expected ',' or ']', but got '<scalar>' "
        f"(while parsing a flow sequence that starts at line {row + 1})\n" in out
    ), out[-2000:]
    assert not (tmp_path / "results").exists()
