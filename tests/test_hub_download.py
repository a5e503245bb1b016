"""The download rules run by the real snakemake CLI against a local stand-in of the Hub.

``tests/hub_standin.py`` serves a KeypointNet-layout dataset repo (the embedded synthetic
shapes of two categories, plus one unannotated 18 MiB mesh, as the real repo holds meshes
of unannotated shapes) and the sample-order CSV; ``HF_ENDPOINT`` points huggingface_hub at
it and ``dataset.sample_order_url`` points the sample-order rule at it. Nothing leaves
127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hub_standin import Fault, HubStandIn, git_blob_id, read_tree

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
TEST_CONFIG = REPO / "config" / "test.yaml"
REPO_ID = "qq456cvb/KeypointNet"
CSV_PATH = "/wimmerth/back-to-3d-few-shot-keypoints/pinned/utils/data/benchmark_indices.csv"
BIG_MESH = "ShapeNetCore.v2.ply/02691156/ffffffffffffffffffffffffffffffff.ply"
CHUNK = 10 * 1024 * 1024  # huggingface_hub's DOWNLOAD_CHUNK_SIZE: resumption granularity
DOWNLOADS = ("--until", "download")  # every category not yet downloaded (what a user runs)
AIRPLANE = "data/kp/annotations/airplane.json"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The stand-in repo: 5 airplanes and 5 chairs in KeypointNet layout and a big mesh."""
    import trimesh

    from bt3d.io import write_ply
    from bt3d.structures import Mesh
    from bt3d.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("hub_repo")
    generate_dataset(root, categories=["airplane", "chair"], shapes_per_category=5)
    sphere = trimesh.creation.icosphere(subdivisions=7)  # ascii PLY of 18 MiB (> CHUNK)
    write_ply(root / BIG_MESH, Mesh(np.asarray(sphere.vertices), np.asarray(sphere.faces),
                                    vertex_normals=np.asarray(sphere.vertex_normals)))  # fmt: skip
    return read_tree(root)


@pytest.fixture
def hub(repo_files: dict[str, bytes]):
    with HubStandIn(REPO_ID, repo_files, page_size=4) as server:
        yield server


def category_files(files: dict[str, bytes], category: str) -> dict[str, bytes]:
    cid = {"airplane": "02691156", "chair": "03001627"}[category]
    prefixes = (f"pcds/{cid}/", f"ShapeNetCore.v2.ply/{cid}/", f"annotations/{category}.json")
    return {p: d for p, d in files.items() if p.startswith(prefixes)}


def write_config(workdir: Path, sample_order_url: str = "http://127.0.0.1:9/unused") -> Path:
    override = workdir / "kp.yaml"
    override.write_text(
        "dataset:\n  name: keypointnet\n  root: data/kp\n  categories: [airplane, chair]\n"
        f"  sample_order: null\n  sample_order_url: {sample_order_url}\n"
    )
    return override


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(TEST_CONFIG), str(workdir / "kp.yaml"), *args]  # fmt: skip


def hub_env(workdir: Path, endpoint: str) -> dict[str, str]:
    return {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(workdir / "hf-home"),
            "HF_HUB_DOWNLOAD_TIMEOUT": "5", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}  # fmt: skip


def run(workdir: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(workdir, *args), capture_output=True, text=True,
                          timeout=600, cwd=workdir, env=hub_env(workdir, endpoint))  # fmt: skip


def assert_downloaded(root: Path, expected: dict[str, bytes]) -> None:
    for rel, data in expected.items():
        got = (root / rel).read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), rel


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def partials(root: Path) -> list[Path]:
    return sorted(root.rglob("*.incomplete"))


def test_two_categories_download_and_a_cut_connection_resumes(tmp_path: Path, hub) -> None:
    hub.faults[BIG_MESH] = Fault("cut", after=CHUNK + 12345)  # one full chunk got through
    write_config(tmp_path)
    result = run(tmp_path, hub.endpoint, "--cores", "2", *DOWNLOADS)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    root = tmp_path / "data" / "kp"
    for category in ("airplane", "chair"):
        assert_downloaded(root, category_files(hub.files, category))
        log = (tmp_path / "logs" / "test" / "download" / f"{category}.log").read_text()
        assert f"{category}: complete" in log
    assert not partials(root)
    big = [r for r in hub.requests if r.server == "cdn" and r.path.endswith(
        hashlib.sha256(hub.files[BIG_MESH]).hexdigest())]  # fmt: skip
    assert [(r.range, r.status) for r in big] == [(None, 200), (f"bytes={CHUNK}-", 206)]
    plan = run(tmp_path, hub.endpoint, "-n")  # the whole workflow: no category to download
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", plan.stdout, flags=re.MULTILINE))
    # per category: the shots part and two test shards
    assert jobs.get("geodesics") == "6" and "download" not in jobs, plan.stdout[-3000:]


def test_killed_download_completes_on_rerun(tmp_path: Path, hub) -> None:
    chair_mesh = next(p for p in category_files(hub.files, "chair") if p.endswith(".ply"))
    hub.faults[chair_mesh] = Fault("stall", after=5000)
    write_config(tmp_path)
    cmd = snakemake_cmd(tmp_path, "--cores", "1", *DOWNLOADS)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=tmp_path, env=hub_env(tmp_path, hub.endpoint),
                            start_new_session=True)  # fmt: skip
    try:
        assert hub.stalled.wait(timeout=300), "the stalled file was never requested"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the node dies mid-download
        proc.wait(timeout=60)
        hub.released.set()
    root = tmp_path / "data" / "kp"
    assert not (root / "annotations" / "chair.json").exists()
    left = partials(root)  # huggingface_hub's temporaries: the stalled file's, maybe others
    assert left and any(p.name.split(".")[1] == sha256_of(hub.files[chair_mesh]) for p in left)
    unlock = run(tmp_path, hub.endpoint, "--unlock", *DOWNLOADS)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    result = run(tmp_path, hub.endpoint, "--cores", "1", "--rerun-incomplete", *DOWNLOADS)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    for category in ("airplane", "chair"):
        assert_downloaded(root, category_files(hub.files, category))
    assert not partials(root)
    log = (tmp_path / "logs" / "test" / "download" / "chair.log").read_text()
    assert f"removed {len(left)} partial files of an interrupted download" in log


def test_files_not_matching_their_hashes_are_refused_then_fetched_again(tmp_path, hub) -> None:
    # same length, one byte flipped; the listing keeps the true sha256 (LFS) / git blob id
    pcd = next(p for p in category_files(hub.files, "airplane") if p.endswith(".pcd"))
    annotations = "annotations/airplane.json"
    hub.faults[pcd] = hub.faults[annotations] = Fault("corrupt")
    write_config(tmp_path)
    result = run(tmp_path, hub.endpoint, "--cores", "1", AIRPLANE)
    assert result.returncode != 0
    want, got = sha256_of(hub.files[pcd]), sha256_of(hub.served_bytes(pcd))
    blob_want, blob_got = (git_blob_id(hub.files[annotations]),
                           git_blob_id(hub.served_bytes(annotations)))  # fmt: skip
    line = (f"[download] DataError: data/kp: airplane download is incomplete: 2 files: "
            f"{annotations} (git blob id {blob_got}, expected {blob_want}), "
            f"{pcd} (sha256 {got}, expected {want})")  # fmt: skip
    assert line in result.stderr, result.stderr[-3000:]
    root = tmp_path / "data" / "kp"
    assert not (root / annotations).exists()  # the category does not count as downloaded
    hub.faults.clear()  # the Hub serves the right bytes again
    result = run(tmp_path, hub.endpoint, "--cores", "1", AIRPLANE)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert_downloaded(root, category_files(hub.files, "airplane"))
    log = (tmp_path / "logs" / "test" / "download" / "airplane.log").read_text()
    assert f"{pcd}: sha256 {got}, expected {want}; fetching it again" in log


def test_sample_order_fetched_and_checked(tmp_path: Path, hub, shared_data: Path) -> None:
    real = (shared_data / "benchmark_indices.csv").read_bytes()  # the pinned sha256's bytes
    hub.raw[CSV_PATH] = real.replace(b"\n", b"\r\n", 1)  # a mirror serving other bytes
    write_config(tmp_path, sample_order_url=hub.url("hub", CSV_PATH))
    target = "data/kp/benchmark_indices.csv"
    result = run(tmp_path, hub.endpoint, "--cores", "1", target)
    assert result.returncode != 0
    assert "[download_sample_order] DataError: " in result.stderr
    assert "differs from the pinned 179001c2434026cb" in result.stderr
    assert not (tmp_path / target).exists()
    hub.raw[CSV_PATH] = real
    result = run(tmp_path, hub.endpoint, "--cores", "1", target)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert (tmp_path / target).read_bytes() == real
    log = (tmp_path / "logs" / "test" / "download" / "sample_order.log").read_text()
    assert f"{len(real)} bytes, sha256 verified" in log


def test_server_down_fails_at_once_saying_what_to_do(tmp_path: Path, repo_files) -> None:
    with HubStandIn(REPO_ID, repo_files) as server:
        endpoint = server.endpoint  # a port nobody listens on once the server is stopped
    write_config(tmp_path, sample_order_url=f"{endpoint}{CSV_PATH}")
    targets = [AIRPLANE, "data/kp/benchmark_indices.csv"]
    result = run(tmp_path, endpoint, "--cores", "1", "--keep-going", *targets)
    assert result.returncode != 0
    for rule, what in (("download", "KeypointNet airplane"), ("download_sample_order",
                                                               "the sample order")):  # fmt: skip
        line = next(x for x in result.stderr.splitlines() if x.startswith(f"[{rule}] "))
        assert line.startswith(
            f"[{rule}] OfflineError: cannot download {what} into data/kp: {endpoint} is "
            "unreachable ("
        ), line
        assert "`dvc pull`" in line and "dataset.root" in line
    assert not (tmp_path / "data" / "kp" / "annotations").exists()
