"""The Snakemake mode of `bt3d detect` (`dataset.name: folder`): same outputs, cached features.

Three labelled meshes with .pp files and a folder of three meshes in mixed formats and
scales (tests/own_shapes.py, as tests/test_detect.py), the weights-free ``classical``
backbone with 4 views of 112 px and 512 points (fast; accuracy is test_detect's job). The
workflow's outputs must equal those of `bt3d detect` with the same settings byte for byte:
against the `bt3d detect` run that reads its features from its cache, since the cache keeps
geodesics as float16 and a first `bt3d detect` run optimises on the float64 ones
(docs/own-shapes.md, Snakemake mode). A fourth labelled mesh must then cost one feature job.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from own_shapes import FOLDER, Case, build_case

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
# the same settings as config keys and as `bt3d detect` options
SETTINGS = {"render": {"n_azimuth": 2, "n_polar": 1, "image_size": 112},
            "backbone": {"name": "classical", "layer": None}, "device": "cpu"}  # fmt: skip
DETECT = ["--backbone", "classical", "--n-azimuth", "2", "--n-polar", "1", "--image-size",
          "112", "--n-points", "512", "--device", "cpu", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Case:
    """Four labelled meshes (the workflow starts with three) and three folder meshes."""
    return build_case(
        tmp_path_factory.mktemp("folder"), shared_data, folder_meshes=FOLDER[1::3], extra_labelled=1
    )


def write_config(case: Case, name: str, pairs: list[Path], out: str, chunk_size: int) -> Path:
    labelled = [
        {"mesh": str(m.relative_to(case.root)), "labels": str(lab.relative_to(case.root))}
        for m, lab in zip(pairs[::2], pairs[1::2], strict=True)
    ]
    folder = {"labelled": labelled, "shapes": "shapes", "out": out, "n_points": 512,
              "chunk_size": chunk_size}  # fmt: skip
    config = {"run": "folder", "dataset": {"name": "folder", "folder": folder}, **SETTINGS}
    path = case.root / name
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def snakemake(case: Case, config: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(case.root),
           "--configfile", str(config), *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=case.root)


def detect(case: Case, out: str, pairs: list[Path]) -> subprocess.CompletedProcess:
    relative = [str(p.relative_to(case.root)) for p in pairs]
    cmd = [sys.executable, "-m", "bt3d.cli", "detect", "--labelled", *relative,
           "--shapes", "shapes", "-o", out, *DETECT]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=case.root)


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table: rule -> jobs."""
    table = output.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def results(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_file())


@pytest.mark.slow
def test_folder_workflow_equals_bt3d_detect_and_caches_features(case: Case) -> None:
    from bt3d.pipeline import load_shape_features

    three, four = case.labelled[:6], case.labelled
    config = write_config(case, "three.yaml", three, "out", chunk_size=8)
    run = snakemake(case, config, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = {"folder_features": 6, "folder_prototypes": 1, "folder_predict": 1}
    assert job_counts(run.stderr) == {**jobs, "folder_results": 1, "all": 1}
    out, cli = case.root / "out", case.root / "cli"
    lint = snakemake(case, config, "--lint")  # the folder rules, as the user's run plans them
    assert lint.returncode == 0, lint.stderr
    assert "workflow is in a good condition" in lint.stdout + lint.stderr, lint.stderr

    # bt3d detect, same settings: its own features equal the workflow's ...
    first = detect(case, "cli", three)
    assert first.returncode == 0, first.stderr
    assert "features: 6 computed, 0 from the cache" in first.stdout, first.stdout
    feature_files = sorted(p.name for p in (out / ".cache").glob("*.npz"))
    assert feature_files == sorted(p.name for p in (cli / ".cache").glob("*.npz"))
    for name in feature_files:
        ours, theirs = (load_shape_features(d / ".cache" / name)[0] for d in (out, cli))
        np.testing.assert_array_equal(ours.features, theirs.features)
        np.testing.assert_array_equal(ours.geodesic_normalised, theirs.geodesic_normalised)
    # ... and its run on those cached features writes the workflow's outputs byte for byte
    second = detect(case, "cli", three)
    assert second.returncode == 0, second.stderr
    assert "features: 0 computed, 6 from the cache" in second.stdout, second.stdout
    names = results(out)
    assert names == results(cli) and len(names) == 3 * 3 + 2  # <stem>.csv/.pp/.json, page, manifest
    for name in names:
        assert (out / name).read_bytes() == (cli / name).read_bytes(), name

    # a fourth labelled mesh: one feature job; prototypes and every prediction chunk again
    config = write_config(case, "four.yaml", four, "out", chunk_size=2)
    dry = snakemake(case, config, "--cores", "2", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = {"folder_features": 1, "folder_prototypes": 1, "folder_predict": 2}
    assert job_counts(dry.stdout + dry.stderr) == {**jobs, "folder_results": 1, "all": 1}
    stamps = {p: p.stat().st_mtime_ns for p in (out / ".cache").glob("*.npz")}
    run = snakemake(case, config, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("rule folder_features:") == 1
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # not recomputed
    assert len(list((out / ".cache").glob("*.npz"))) == len(stamps) + 1
    manifest = json.loads((out / "detect.json").read_text())
    assert [Path(item["labels"]).name for item in manifest["labelled"]] == [
        p.name for p in four[1::2]
    ]
    assert results(out) == names

    # a cluster job reads the plan its main process checked and saved (onstart), and loads
    # no other mesh: it runs with a labels file gone that would stop a main process
    key = sorted(stamps)[0].stem
    labels = four[1]
    labels.rename(labels.with_suffix(".away"))
    try:
        job = snakemake(case, config, "--mode", "remote", "--target-jobs",
                        f"folder_features:feature_key={key}", "--cores", "1",
                        "--forcerun", "folder_features")  # fmt: skip
    finally:
        labels.with_suffix(".away").rename(labels)
    assert job.returncode == 0, job.stderr[-3000:]
    assert "Finished jobid: 0 (Rule: folder_features)" in job.stderr, job.stderr[-3000:]


def test_bad_labels_stop_the_workflow_at_start(case: Case) -> None:
    empty = case.root / "labelled" / "empty.pp"
    empty.write_text("")
    pairs = [*case.labelled[:2], case.labelled[2], empty, *case.labelled[4:6]]
    config = write_config(case, "bad.yaml", pairs, "out-bad", chunk_size=8)
    before = sorted(p.relative_to(case.root) for p in case.root.rglob("*"))
    run = snakemake(case, config, "--cores", "1")
    assert run.returncode != 0
    ours = [line for line in run.stderr.splitlines() if not line.startswith("Config file ")]
    assert ours == [
        "dataset.folder.labelled[1].labels: labelled/empty.pp: not a MeshLab PickPoints file "
        "(XML error: no element found: line 1, column 0)"
    ], run.stderr
    after = sorted(p.relative_to(case.root) for p in case.root.rglob("*"))
    assert [p for p in after if p not in before and p.parts[0] != ".snakemake"] == []


def test_an_output_folder_the_workflow_did_not_make_is_refused(case: Case) -> None:
    other = case.root / "someone-elses"
    other.mkdir(exist_ok=True)
    (other / "notes.txt").write_text("mine\n")
    config = write_config(case, "other.yaml", case.labelled[:6], "someone-elses", chunk_size=8)
    run = snakemake(case, config, "--cores", "1")
    assert run.returncode != 0
    assert (
        "dataset.folder.out: someone-elses: folder exists, is not empty and was not written by "
        "bt3d detect (no detect.json); choose a new output folder"
    ) in run.stderr.splitlines()
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
