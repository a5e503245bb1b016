"""End-to-end: the real snakemake CLI on config/test.yaml in a temporary working directory.

Slow (about two minutes on two cores); CI runs it (`make test`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import decode_data_uri, open_in_chromium, open_report_result, report_results

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
TEST_CONFIG = REPO / "config" / "test.yaml"
CATEGORIES = ["airplane", "chair"]

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, configs: tuple[Path, ...] = ()) -> str:
    """Run snakemake on the repository's Snakefile in ``workdir``; return its output."""
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(TEST_CONFIG), *map(str, configs), *args]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=workdir)
    out = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{out[-4000:]}")
    return out


def planned(workdir: Path, *configs: Path) -> dict[str, int]:
    """Jobs per rule that a dry run plans (empty when nothing is to be done)."""
    out = snakemake(workdir, "-n", configs=configs)
    counts = {}
    for name, count in re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.MULTILINE):
        if name != "total":
            counts[name] = int(count)
    return counts


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    snakemake(workdir, "--cores", "2")
    return workdir


def test_tables_have_the_documented_columns(run_dir: Path) -> None:
    tables = run_dir / "results" / "test" / "tables"
    miou = pd.read_csv(tables / "miou.csv")
    intervals = ["std", "ci_low", "ci_high", "shot_sets", "shapes"]
    assert list(miou.columns) == ["variant", "category", "threshold", "miou", *intervals]
    assert set(miou["variant"]) == {"bt3d"} and (miou["shot_sets"] == 1).all()
    assert miou["std"].isna().all()  # one shot set: no spread across shot sets
    assert (miou["ci_low"] <= miou["miou"]).all() and (miou["miou"] <= miou["ci_high"]).all()
    assert sorted(miou["category"].unique()) == CATEGORIES
    assert miou["threshold"].round(2).tolist()[:11] == [round(0.01 * i, 2) for i in range(11)]
    assert miou["miou"].between(0, 1).all()
    pck = pd.read_csv(tables / "pck.csv")
    assert list(pck.columns) == ["variant", "category", "threshold", "pck", *intervals]
    per_kp = pd.read_csv(tables / "per_keypoint.csv")
    columns = ["variant", "category", "semantic_id", "label", "threshold", "pck"]
    assert list(per_kp.columns) == columns
    nose = per_kp[(per_kp["category"] == "airplane") & (per_kp["semantic_id"] == 0)]
    assert set(nose["label"]) == {"nose of the airplane"}  # the synthetic keypoint_labels.json
    baseline = pd.read_csv(tables / "baseline.csv")
    assert list(baseline.columns) == ["variant", "category", "threshold", "miou", "pck"]


def test_markdown_table_is_laid_out_like_the_paper(run_dir: Path) -> None:
    lines = (run_dir / "results" / "test" / "tables" / "miou.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| category"))
    assert header.split("|")[3].strip() == "0.00" and header.split("|")[-2].strip() == "0.10"
    means = lines[: lines.index("95 % bootstrap interval (shot sets, then test shapes, resampled)")]
    rows = [line for line in means if line.startswith("| airplane") or line.startswith("| chair")]
    assert [r.split("|")[2].strip() for r in rows] == ["bt3d", "random", "bt3d", "random"]


@pytest.fixture(scope="module")
def report(run_dir: Path) -> Path:
    """``snakemake --report`` of the run."""
    path = run_dir / "results" / "test" / "report.html"
    snakemake(run_dir, "--report", str(path))
    return path


def test_plots_and_report(run_dir: Path, report: Path) -> None:
    plots = run_dir / "results" / "test" / "plots"
    for name in ["miou.png", "pck.png", "keypoints/airplane.png", "keypoints/chair.png"]:
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    html = report.read_text(errors="replace")
    assert "miou.csv" in html and "miou.png" in html


def test_the_cli_builds_the_workflows_artifacts_byte_for_byte(
    run_dir: Path, tmp_path: Path
) -> None:
    """`bt3d features/prototypes/predict --config config/test.yaml` on the shapes of a run:
    the same features, geodesics, prototypes and predictions, to the byte (one path)."""
    from bt3d.cache import load_arrays
    from bt3d.cli import main
    from bt3d.fewshot import KeypointPrototypes
    from bt3d.io import KeypointNetDataset

    results, category = run_dir / "results" / "test", "chair"
    dataset = KeypointNetDataset(run_dir / "data" / "synthetic-test")
    config = ["--config", str(TEST_CONFIG)]

    def cli_features(part: str) -> tuple[list[Path], list[str]]:
        geo, _ = load_arrays(results / "geodesics" / category / f"{part}.npz")
        feat, _ = load_arrays(results / "features" / "bt3d" / category / f"{part}.npz")
        files, ids = [], [str(m) for m in geo["model_ids"]]
        for i, model_id in enumerate(ids):
            out = tmp_path / f"{model_id}.npz"
            mesh, pcd = dataset.mesh_path(category, model_id), dataset.pcd_path(category, model_id)
            assert main(["features", str(mesh), str(pcd), "-o", str(out), *config]) == 0
            mine, _ = load_arrays(out)
            assert mine["geodesic_f16"].tobytes() == geo["geodesic"][i].tobytes(), model_id
            assert mine["features"].tobytes() == feat["features"][i].tobytes(), model_id
            assert mine["counts"].tobytes() == feat["counts"][i].tobytes(), model_id
            files.append(out)
        return files, ids

    shots, _ = cli_features("shots")
    prototypes = tmp_path / "prototypes.npz"
    args = ["prototypes", *map(str, shots), "-o", str(prototypes), *config]
    assert main([*args, "--annotations", str(dataset.annotation_path(category))]) == 0
    ours, theirs = (
        KeypointPrototypes.load(p)
        for p in (prototypes, results / "prototypes" / "bt3d" / category / "set-0.npz")
    )
    for name in ("semantic_ids", "features", "target_distances", "pair_counts"):
        assert getattr(ours, name).tobytes() == getattr(theirs, name).tobytes(), name

    tests, ids = cli_features("shard-0")
    predictions = results / "predictions" / "bt3d" / category / "set-0" / "shard-0.json"
    workflow = json.loads(predictions.read_text())
    for path, expected in zip(tests, workflow["predictions"], strict=True):
        out = tmp_path / f"{path.stem}.json"
        assert (
            main(["predict", str(path), "--prototypes", str(prototypes), "-o", str(out), *config])
            == 0
        )
        (record,) = json.loads(out.read_text())["predictions"]
        assert record.pop("xyz") and record == expected
    assert [p.stem for p in tests] == ids


def test_worst_case_tables_rank_keypoints_by_error(run_dir: Path) -> None:
    from bt3d.io import read_keypoint_labels

    labels = read_keypoint_labels(run_dir / "data" / "synthetic-test" / "keypoint_labels.json")
    for category in CATEGORIES:
        table = pd.read_csv(run_dir / "results" / "test" / "worst" / f"{category}.csv")
        assert list(table.columns) == [
            "rank", "model_id", "semantic_id", "label", "error", "distance"
        ]  # fmt: skip
        assert 0 < len(table) <= 10 and table["rank"].tolist() == list(range(1, len(table) + 1))
        assert table["error"].is_monotonic_decreasing and table["error"].between(0, 1).all()
        known = labels[category]
        assert [known[s] for s in table["semantic_id"]] == table["label"].tolist()


def test_report_embeds_the_3d_view_and_it_draws(report: Path, tmp_path: Path) -> None:
    key = "results/test/views/chair.html"
    assert report_results(report)[key]["mime_type"] == "text/html"
    errors, embedded, console = open_report_result(report, key, tmp_path / "profile")
    assert errors == [] and embedded["errors"] == [], "\n".join(console)
    assert embedded["plots"] == 1 and embedded["scenes"] == 1 and embedded["canvases"] >= 1
    assert "worst first" in embedded["text"]


def test_report_lists_the_worst_cases(run_dir: Path, report: Path, tmp_path: Path) -> None:
    key = "results/test/worst/airplane.html"
    table = pd.read_csv(run_dir / "results" / "test" / "worst" / "airplane.csv")
    page = decode_data_uri(report_results(report)[key]["data_uri"])
    assert "<table" in page and 'src="data:image/png;base64,' in page
    errors, embedded, console = open_report_result(report, key, tmp_path / "profile")
    assert errors == [] and embedded["errors"] == [], "\n".join(console)
    assert embedded["tables"] == 1
    assert f"1\t{table['model_id'][0]}\t{table['semantic_id'][0]}" in embedded["text"]


def test_3d_view_page_opens_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    page = run_dir / "results" / "test" / "views" / "airplane.html"
    assert "<script src=" not in page.read_text()  # plotly.js inline: works offline
    dom, errors, console = open_in_chromium(page, tmp_path / "profile")
    assert errors == [], "\n".join(console)
    assert '<div class="gl-container"' in dom and "<canvas " in dom  # the 3D scene drew
    assert "ground truth (circle)" in dom and "predicted (diamond)" in dom  # the legend


def test_second_dry_run_plans_nothing(run_dir: Path) -> None:
    assert planned(run_dir) == {}


def test_changed_keypoint_labels_rerun_evaluation_only(run_dir: Path) -> None:
    labels = run_dir / "data" / "synthetic-test" / "keypoint_labels.json"
    original, stamp = labels.read_bytes(), labels.stat()
    labels.write_bytes(original.replace(b"nose of the airplane", b"nose cone of the airplane"))
    try:
        plan = planned(run_dir)
    finally:
        labels.write_bytes(original)
        os.utime(labels, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert plan.get("evaluate") == 2 and plan.get("aggregate") == 1, plan
    assert not {"geodesics", "features", "prototypes", "optimize"} & set(plan)


def test_optimiser_change_reruns_optimisation_but_not_features(run_dir: Path) -> None:
    override = run_dir / "alpha.yaml"
    override.write_text("optimiser:\n  alpha: 2.0\n")
    plan = planned(run_dir, override)
    assert plan.get("optimize") == 4 and plan.get("evaluate") == 2 and plan.get("aggregate") == 1
    assert "features" not in plan and "geodesics" not in plan and "prototypes" not in plan


def test_feature_change_reruns_features_but_not_geodesics(run_dir: Path) -> None:
    override = run_dir / "sigma.yaml"
    override.write_text("features:\n  sigma: 0.02\n")
    plan = planned(run_dir, override)
    # per category: the shots part and two test shards
    assert plan.get("features") == 6 and plan.get("prototypes") == 2 and plan.get("optimize") == 4
    assert "geodesics" not in plan and "synthetic" not in plan


def test_rerun_after_change_then_nothing_planned(run_dir: Path) -> None:
    features = sorted((run_dir / "results" / "test" / "features").rglob("*.npz"))
    before = {p: p.stat().st_mtime_ns for p in features}
    override = run_dir / "alpha.yaml"
    override.write_text("optimiser:\n  alpha: 2.0\n")
    snakemake(run_dir, "--cores", "2", configs=(override,))
    assert {p: p.stat().st_mtime_ns for p in features} == before
    assert planned(run_dir, override) == {}


def test_labelled_annotated_xyz_reruns_prototypes_onwards_only(run_dir: Path) -> None:
    """The authors' labelled-shape features (config/paper.yaml) change the prototypes only:
    the shots artifact already holds the unsmoothed features they need."""
    features = sorted((run_dir / "results" / "test" / "features").rglob("*.npz"))
    prototypes = run_dir / "results" / "test" / "prototypes" / "bt3d" / "chair" / "set-0.npz"
    before = {p: p.stat().st_mtime_ns for p in features}
    old = np.load(prototypes)["features"]
    override = run_dir / "labelled.yaml"
    override.write_text("features:\n  labelled: annotated_xyz\n")
    plan = planned(run_dir, override)
    assert plan.get("prototypes") == 2 and plan.get("optimize") == 4, plan
    assert not {"features", "geodesics"} & set(plan)
    snakemake(run_dir, "--cores", "2", configs=(override,))
    assert {p: p.stat().st_mtime_ns for p in features} == before
    new = np.load(prototypes)
    assert new["features"].shape == old.shape and not np.allclose(new["features"], old)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("backbone:\n  name: no_such_backbone\n",
         "BackboneError: unknown backbone 'no_such_backbone'"),
        ("backbone:\n  name: dinov2_vits14_offline\n  layer: block99\n",
         "BackboneError: backbone.layer 'block99' asks for block 99, but the model has "
         "blocks 0..11"),
        ("render:\n  image_size: 100\n",
         "ConfigError: render.image_size 100 is not a multiple of classical's 14 px patches; "
         "use 98 or 112"),
        ("dataset:\n  shots: 5\n",
         "dataset.synthetic.shapes_per_category 5 leaves no test shape after dataset.offset 0 "
         "+ dataset.shots 5"),
    ],
)  # fmt: skip
def test_bad_setting_stops_at_start_in_one_line(
    run_dir: Path, tmp_path: Path, override: str, message: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(override)
    before = {p: p.stat().st_mtime_ns for p in (run_dir / "results").rglob("*") if p.is_file()}
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(run_dir),
           "--configfile", str(TEST_CONFIG), str(config), "--cores", "1"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=run_dir)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Config file")]
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    after = {p: p.stat().st_mtime_ns for p in (run_dir / "results").rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_stops_before_any_job(run_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "cuda.yaml"
    config.write_text("device: cuda\n")
    before = {p: p.stat().st_mtime_ns for p in (run_dir / "results").rglob("*") if p.is_file()}
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(run_dir),
           "--configfile", str(TEST_CONFIG), str(config), "--cores", "1"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=run_dir)
    assert result.returncode != 0
    assert "device: cuda was asked for, but PyTorch sees 0 CUDA devices here" in result.stderr
    assert "Traceback" not in result.stderr
    after = {p: p.stat().st_mtime_ns for p in (run_dir / "results").rglob("*") if p.is_file()}
    assert after == before


KEYPOINTNET = "dataset:\n  name: keypointnet\n  root: data/kp\n  categories: [chair]\n"


def test_download_offline_fails_fast_saying_what_to_do(tmp_path: Path) -> None:
    override = tmp_path / "kp.yaml"
    override.write_text(KEYPOINTNET + "  sample_order: null\n")  # the paper's CSV, downloaded
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(TEST_CONFIG), str(override), "--cores", "1",
           "--until", "download_sample_order"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "[download_sample_order] OfflineError: cannot download the sample order" in out
    assert "`dvc pull`" in out and "dataset.root" in out
    assert "or set dataset.sample_order to a local copy of the CSV, or to `annotations`" in out
    assert not (tmp_path / "data" / "kp" / "benchmark_indices.csv").exists()


def test_too_few_shapes_with_files_is_one_clear_error(tmp_path: Path, shared_data: Path) -> None:
    # the sample annotates 999 chairs but holds the files of one: skip leaves 1 < 3 shots
    root = tmp_path / "data" / "kp"
    shutil.copytree(shared_data / "keypointnet-sample", root)
    override = tmp_path / "kp.yaml"
    override.write_text(KEYPOINTNET + "  sample_order: annotations\n  missing_shapes: skip\n")
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(TEST_CONFIG), str(override), "--cores", "1"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert (  # at start, before any job
        "DataError: data/kp/annotations/chair.json: "
        "chair: class 03001627 has 1 usable shapes, fewer than offset 0 + shots 3 "
        "(dataset.shots / dataset.offset); 998 annotated shapes lack their files and were skipped"
    ) in out, out[-3000:]
    assert not list((tmp_path / "results").rglob("*.npz"))
