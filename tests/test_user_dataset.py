"""End-to-end on a user's own KeypointNet-layout folder built from the real sample chair.

The folder holds six chairs derived from ``../shared``'s real KeypointNet chair by
anisotropic scaling, stored in millimetres (real PLY/PCD formats, real keypoint annotation;
indices stay valid; ``dataset.normalise`` brings them back to KeypointNet's scale), an
annotation file that also lists two real chairs whose files are absent, and no
``benchmark_indices.csv``: the situation of a user with a partial KeypointNet copy or shapes
of their own. The workflow must run on it with ``sample_order: auto`` (no CSV: the annotation
file's order) and ``missing_shapes: skip`` (and say what it did), and stop with a clear
message under ``missing_shapes: error``. Slow (about a minute on two cores); CI runs it
(`make test`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bt3d.cache import load_arrays
from bt3d.io import read_annotations, read_pcd, read_ply, write_annotations, write_pcd, write_ply

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
TEST_CONFIG = REPO / "config" / "test.yaml"
CHAIR = "03001627"
SCALES = [(1.0, 1.0, 1.0), (1.15, 0.9, 1.0), (0.9, 1.1, 1.05),
          (1.05, 1.0, 0.85), (0.95, 1.2, 0.95), (1.1, 0.85, 1.1)]  # fmt: skip

MILLIMETRES = 1000.0

pytestmark = pytest.mark.slow


def user_dataset(root: Path, shared_data: Path) -> tuple[list[str], list[str]]:
    """Write the derived chairs under ``root``; return (model ids with files, without)."""
    sample = shared_data / "keypointnet-sample"
    mesh_path = next((sample / "ShapeNetCore.v2.ply" / CHAIR).glob("*.ply"))
    source_id = mesh_path.stem
    mesh = read_ply(mesh_path)
    points, colors = read_pcd(sample / "pcds" / CHAIR / f"{source_id}.pcd")
    records = {a.model_id: a for a in read_annotations(sample / "annotations" / "chair.json")}
    source = records.pop(source_id)
    with_files = []
    for i, scale in enumerate(SCALES):
        model_id = f"user-chair-{i}"
        s = np.asarray(scale) * MILLIMETRES  # stored at another scale than ShapeNet's
        (root / "ShapeNetCore.v2.ply" / CHAIR).mkdir(parents=True, exist_ok=True)
        (root / "pcds" / CHAIR).mkdir(parents=True, exist_ok=True)
        write_ply(root / "ShapeNetCore.v2.ply" / CHAIR / f"{model_id}.ply",
                  replace(mesh, vertices=mesh.vertices * s, vertex_normals=None))  # fmt: skip
        write_pcd(root / "pcds" / CHAIR / f"{model_id}.pcd", points * s, colors)
        with_files.append(replace(source, model_id=model_id, xyz=source.xyz * s))
    without_files = list(records.values())[:2]  # real chairs whose files the folder lacks
    (root / "annotations").mkdir()
    # the absent chairs come first: the split must skip them, not take them as shots
    write_annotations(root / "annotations" / "chair.json", without_files + with_files)
    return [a.model_id for a in with_files], [a.model_id for a in without_files]


def snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(TEST_CONFIG), str(config), *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=workdir)


def user_config(workdir: Path, missing_shapes: str, sample_order: str) -> Path:
    path = workdir / f"user-{missing_shapes}.yaml"
    path.write_text(
        "run: user\n"
        "dataset:\n  name: keypointnet\n  root: data/user\n  categories: [chair]\n"
        f"  sample_order: {sample_order}\n  missing_shapes: {missing_shapes}\n"
        "  max_test_shapes: null\n"
    )
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    workdir = tmp_path_factory.mktemp("user")
    user_dataset(workdir / "data" / "user", shared_data)
    return workdir


def test_missing_shapes_error_lists_them_and_writes_nothing(workdir: Path) -> None:
    result = snakemake(workdir, user_config(workdir, "error", "annotations"), "--cores", "1")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    # at start, before any job; the hint never suggests deleting the user's annotations
    assert re.search(r"DataError: data/user: dataset is incomplete for chair: "
                     r"missing 4 files: pcds/03001627/\w+\.pcd", out), out[-3000:]  # fmt: skip
    assert "dataset.missing_shapes: skip" in out and "delete" not in out
    assert not (workdir / "results" / "user" / "geodesics").exists() or not any(
        (workdir / "results" / "user" / "geodesics").rglob("*.npz")
    )


def test_user_folder_without_sample_order_runs_skipping_absent_shapes(
    workdir: Path, shared_data: Path
) -> None:
    config = user_config(workdir, "skip", "auto")  # auto: no CSV, so the annotation order
    result = snakemake(workdir, config, "--cores", "2")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "download" not in re.findall(r"^(?:local)?rule (\w+):", out, flags=re.MULTILINE)
    run = workdir / "results" / "user"
    log = (workdir / "logs" / "user" / "geodesics" / "chair-shots.log").read_text()
    assert "WARNING: chair: skipping 2 annotated shapes without their files" in log
    assert (
        "WARNING: chair: shots and test shapes follow the record order of "
        "data/user/annotations/chair.json, not the paper's benchmark_indices.csv"
    ) in log
    note = (run / "tables" / "miou.md").read_text()
    assert "Note: chair: shots and test shapes follow the record order of " in note
    assert "Note: chair: 2 of 8 annotated shapes lack their point cloud or mesh" in note
    (metrics,) = json.loads((run / "metrics" / "bt3d" / "chair.json").read_text())["shot_sets"]
    # annotation order, absent shapes skipped: chairs 0-2 are the shots, 3-5 the test shapes
    assert sorted(metrics["test_shapes"]) == [f"user-chair-{i}" for i in (3, 4, 5)]
    miou = pd.read_csv(run / "tables" / "miou.csv")
    assert miou["miou"].between(0, 1).all() and len(miou) == 11
    base = pd.read_csv(run / "tables" / "baseline.csv")
    # the test chairs are the shots' shape rescaled: the method must beat random points
    assert miou["miou"].iloc[-1] > base["miou"].iloc[-1]
    again = snakemake(workdir, config, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def folder_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (and the folders, as "dir")."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in sorted(root.rglob("*"))
    }


def test_user_folder_with_default_dataset_name_is_refused_and_untouched(
    tmp_path: Path, shared_data: Path
) -> None:
    # the user sets their folder as root but forgets dataset.name (default: synthetic), which
    # once let the synthetic rule overwrite annotations/chair.json
    root = tmp_path / "data" / "user"
    user_dataset(root, shared_data)
    before = folder_digest(root)
    config = tmp_path / "forgot-name.yaml"
    config.write_text("run: user\ndataset:\n  root: data/user\n  categories: [chair]\n")
    result = snakemake(tmp_path, config, "--cores", "2")
    assert result.returncode != 0
    assert (
        "dataset.root data/user was not created by bt3d (it holds ShapeNetCore.v2.ply, "
        "annotations, pcds); the workflow would write into it to generate the synthetic dataset"
    ) in result.stderr
    assert "set dataset.name: keypointnet" in result.stderr
    assert folder_digest(root) == before
    assert not (tmp_path / "results").exists()


def test_workflow_never_downloads_into_a_users_folder(tmp_path: Path, shared_data: Path) -> None:
    root = tmp_path / "data" / "user"
    user_dataset(root, shared_data)
    before = folder_digest(root)
    config = tmp_path / "more.yaml"
    config.write_text(
        "run: user\ndataset:\n  name: keypointnet\n  root: data/user\n"
        "  categories: [chair, table]\n"
    )
    result = snakemake(tmp_path, config, "-n")
    assert result.returncode != 0
    assert "the workflow would write into it to download annotations/table.json" in result.stderr
    assert folder_digest(root) == before


@pytest.mark.parametrize("fault", ["metres_beside_millimetres", "swapped_point_cloud"])
def test_point_cloud_that_does_not_belong_to_its_mesh_is_refused(
    tmp_path: Path, shared_data: Path, fault: str
) -> None:
    root = tmp_path / "data" / "user"
    with_files, _ = user_dataset(root, shared_data)
    victim = root / "pcds" / CHAIR / f"{with_files[4]}.pcd"
    if fault == "metres_beside_millimetres":
        points, colors = read_pcd(victim)
        write_pcd(victim, points / MILLIMETRES, colors)
    else:  # another chair's point cloud (anisotropically scaled differently)
        shutil.copy(root / "pcds" / CHAIR / f"{with_files[1]}.pcd", victim)
    config = user_config(tmp_path, "skip", "auto")
    result = snakemake(tmp_path, config, "--cores", "2", "--until", "geodesics")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    mesh = f"data/user/ShapeNetCore.v2.ply/{CHAIR}/{with_files[4]}.ply"
    assert re.search(
        rf"\[geodesics\] DataError: data/user/pcds/{CHAIR}/{with_files[4]}\.pcd does not lie on "
        rf"{mesh}: point \d+ is [\d.e+-]+ from the surface",
        out,
    ), out[-3000:]
    # the victim's part wrote nothing (the other parts may finish, in any order)
    for artifact in (tmp_path / "results").rglob("*.npz"):
        assert with_files[4] not in load_arrays(artifact)[0]["model_ids"], artifact
