"""Dataset file verification (sizes, sha256, missing files) and run artifact checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from bt3d.cache import save_arrays, save_json_atomic
from bt3d.errors import CacheError
from bt3d.fewshot import KeypointPrototypes
from bt3d.integrity import describe_missing, git_blob_id, sha256_file, verify_files
from bt3d.results import dependents, remove_with_dependents, verify_run


def dataset(tmp_path: Path) -> tuple[Path, dict]:
    """A small folder and its manifest ``{relative path: (size, sha256)}``."""
    files = {"pcds/1/a.pcd": b"points a\n", "pcds/1/b.pcd": b"points bb\n", "ann.json": b"[]"}
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    return tmp_path, {r: (len(d), hashlib.sha256(d).hexdigest()) for r, d in files.items()}


def test_intact_folder_has_no_problems(tmp_path: Path) -> None:
    root, manifest = dataset(tmp_path)
    assert verify_files(root, manifest) == {}
    assert sha256_file(root / "ann.json") == hashlib.sha256(b"[]").hexdigest()


def test_missing_resized_and_altered_files_are_reported(tmp_path: Path) -> None:
    root, manifest = dataset(tmp_path)
    (root / "pcds/1/a.pcd").unlink()
    (root / "pcds/1/b.pcd").write_bytes(b"points b\n")  # one byte short
    (root / "ann.json").write_bytes(b"{}")  # same size, other content
    problems = verify_files(root, manifest)
    assert problems["pcds/1/a.pcd"] == "missing"
    assert problems["pcds/1/b.pcd"] == "size 9, expected 10"
    assert problems["ann.json"].startswith(f"sha256 {hashlib.sha256(b'{}').hexdigest()}")


def test_unknown_size_or_hash_is_not_checked(tmp_path: Path) -> None:
    root, _ = dataset(tmp_path)
    assert verify_files(root, {"ann.json": (None, None), "pcds/1/a.pcd": (9, None)}) == {}


def test_describe_missing_lists_the_first_paths_and_the_count() -> None:
    paths = [f"pcds/{i}.pcd" for i in range(8)]
    assert (
        describe_missing(paths, limit=3) == "8 files: pcds/0.pcd, pcds/1.pcd, pcds/2.pcd and 5 more"
    )
    assert describe_missing(paths[:2]) == "2 files: pcds/0.pcd, pcds/1.pcd"


def run_folder(tmp_path: Path) -> Path:
    root = tmp_path / "results" / "run"
    save_arrays(
        root / "features" / "bt3d" / "chair" / "shard-0.npz", {"x": np.ones(3)}, {"kind": "f"}
    )
    save_json_atomic(
        root / "predictions" / "bt3d" / "chair" / "set-0" / "shard-0.json", {"predictions": []}
    )
    KeypointPrototypes(
        semantic_ids=np.array([0]),
        features=np.ones((1, 2), np.float32),
        target_distances=np.zeros((1, 1)),
        pair_counts=np.ones((1, 1), np.int64),
        shot_ids=["m"],
        reduction="mean",
    ).save(
        root / "prototypes" / "bt3d" / "chair" / "set-0.npz",
        {"kind": "prototypes", "config_hash": "abc"},
    )
    return root


def test_verify_run_accepts_a_clean_folder(tmp_path: Path) -> None:
    assert verify_run(run_folder(tmp_path)) == (3, [])


def test_verify_run_reports_and_deletes_bad_files(tmp_path: Path) -> None:
    root = run_folder(tmp_path)
    bad_npz = root / "features" / "bt3d" / "chair" / "shard-0.npz"
    bad_npz.write_bytes(bad_npz.read_bytes()[:100])
    bad_json = root / "predictions" / "bt3d" / "chair" / "set-0" / "shard-0.json"
    bad_json.write_text('{"predictions": []}')
    stray = root / "features" / "bt3d" / "chair" / ".shard-1.npz.x1.tmp"
    stray.write_bytes(b"half")
    checked, bad = verify_run(root)
    assert checked == 3
    problems = dict(bad)
    assert problems[bad_npz].startswith(f"{bad_npz}: truncated or corrupt .npz")
    assert problems[bad_json] == f"{bad_json}: JSON artifact without a header"
    assert "interrupted write" in problems[stray]
    verify_run(root, delete=True)
    assert not bad_npz.exists() and not bad_json.exists() and not stray.exists()
    assert not (root / "prototypes" / "bt3d" / "chair" / "set-0.npz").exists()  # from features


def test_verify_never_touches_files_the_workflow_does_not_write(
    tmp_path: Path, shared_data: Path
) -> None:
    import shutil

    from bt3d.errors import CacheError

    user = tmp_path / "kp"  # a user's KeypointNet folder: its JSON files carry no header
    shutil.copytree(shared_data / "keypointnet-sample" / "annotations", user / "annotations")
    with pytest.raises(CacheError, match="not a bt3d results folder"):
        verify_run(user, delete=True)
    assert (user / "annotations" / "chair.json").is_file()
    root = run_folder(tmp_path)
    notes = root / "notes.json"  # a user's file beside the artifacts
    notes.write_text("[1, 2]")
    assert verify_run(root, delete=True) == (3, [])
    assert notes.read_text() == "[1, 2]"


def test_prototype_header_is_checked(tmp_path: Path) -> None:
    path = run_folder(tmp_path) / "prototypes" / "bt3d" / "chair" / "set-0.npz"
    assert KeypointPrototypes.load(path, {"config_hash": "abc"}).shot_ids == ["m"]
    with pytest.raises(CacheError, match="header field 'config_hash' is 'abc', expected 'xyz'"):
        KeypointPrototypes.load(path, {"config_hash": "xyz"})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CacheError, match="set-0.npz: truncated or corrupt .npz"):
        KeypointPrototypes.load(path)


def test_dependents_follow_the_results_layout(tmp_path: Path) -> None:
    root = tmp_path / "results" / "run"
    files = [
        "geodesics/chair/shard-0.npz", "features/a/chair/shard-1.npz",
        "features/a/airplane/shard-1.npz", "prototypes/a/chair/set-0.npz",
        "prototypes/b/chair/set-1.npz", "prototypes/a/airplane/set-0.npz",
        "predictions/a/chair/set-0/shard-0.json", "predictions/b/chair/set-1/shots.json",
        "predictions/a/airplane/set-0/shard-0.json", "metrics/a/chair.json",
        "metrics/b/chair.json", "metrics/a/airplane.json", "tables/miou.csv",
        "tables/comparison.csv", "manifest.json", "plots/miou.png", "plots/comparison.png",
        "plots/keypoints/chair.png", "plots/keypoints/airplane.png",
    ]  # fmt: skip
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    tables = {"tables/miou.csv", "tables/comparison.csv", "manifest.json", "plots/miou.png",
              "plots/comparison.png"}  # fmt: skip
    after_features = {str(p.relative_to(root)) for p in dependents(root / files[1])}
    assert after_features == {
        "prototypes/a/chair/set-0.npz", "prototypes/b/chair/set-1.npz",
        "predictions/a/chair/set-0/shard-0.json", "predictions/b/chair/set-1/shots.json",
        "metrics/a/chair.json", "metrics/b/chair.json", "plots/keypoints/chair.png", *tables,
    }  # fmt: skip
    after_geodesics = {str(p.relative_to(root)) for p in dependents(root / files[0])}
    assert after_geodesics == after_features
    after_predictions = {str(p.relative_to(root)) for p in dependents(root / files[7])}
    assert after_predictions == {
        "metrics/a/chair.json", "metrics/b/chair.json", "plots/keypoints/chair.png", *tables
    }  # fmt: skip
    after_metrics = {str(p.relative_to(root)) for p in dependents(root / "metrics/a/airplane.json")}
    assert after_metrics == tables
    assert dependents(tmp_path / "elsewhere.npz") == []
    remove_with_dependents(root / files[1])
    assert not (root / files[1]).exists() and not (root / "prototypes/a/chair/set-0.npz").exists()
    assert (root / "prototypes/a/airplane/set-0.npz").exists() and (root / files[0]).exists()


def test_git_blob_id_checks_files_the_hub_lists_without_sha256(tmp_path: Path) -> None:
    import shutil
    import subprocess

    path = tmp_path / "ann.json"
    path.write_bytes(b'[{"model_id": "a"}]\n')
    if shutil.which("git"):  # git's own hash of the same bytes
        out = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True)
        assert git_blob_id(path) == out.stdout.strip()
    good = git_blob_id(path)
    assert verify_files(tmp_path, {"ann.json": (path.stat().st_size, None, good)}) == {}
    path.write_bytes(b'[{"model_id": "b"}]\n')  # same size, other content
    problems = verify_files(tmp_path, {"ann.json": (path.stat().st_size, None, good)})
    assert problems == {"ann.json": f"git blob id {git_blob_id(path)}, expected {good}"}
