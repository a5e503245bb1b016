"""DVC round trip: run the tiny workflow, `make push` to a local-directory remote, fresh
`git clone`, `make pull`; Snakemake must then plan no geodesic, feature or optimisation job.

DVC does not keep file times on pull (treeverse/dvc#8602, #10347), so without the
`snakemake --touch` step of `make pull` the pulled outputs can look older than their inputs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPIED = [
    "Snakefile", "workflow", "scripts", "envs", "config.yaml", "config", "bt3d", "Makefile",
    "requirements", "pyproject.toml", ".dvc/config", ".dvc/.gitignore", ".dvcignore",
    ".gitignore",
]  # fmt: skip
CONFIG = "config/dvc-test.yaml"

pytestmark = pytest.mark.slow


def sh(cmd: list[str], cwd: Path, timeout: int = 1200) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    out = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed in {cwd}:\n{out[-4000:]}")
    return out


def git(cwd: Path, *args: str) -> str:
    return sh(["git", "-c", "user.name=bt3d-test", "-c", "user.email=test@bt3d", *args], cwd)


def planned(cwd: Path) -> dict[str, int]:
    out = sh([str(BIN / "snakemake"), "-n", "--configfile", CONFIG], cwd)
    found = re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.MULTILINE)
    return {name: int(n) for name, n in found if name != "total"}


def make(cwd: Path, target: str, venv: Path) -> str:
    """Run a Makefile target against the test's venv (a stamp marks it as set up)."""
    stamp = venv / ".bt3d-installed"
    stamp.touch()
    os.utime(stamp, None)
    return sh(["make", target, f"VENV={venv}", f"CONFIG={CONFIG}"], cwd)


@pytest.fixture()
def venv(tmp_path: Path) -> Path:
    """A venv folder whose bin/ is the running interpreter's (for the Makefile's $(BIN))."""
    folder = tmp_path / "venv"
    folder.mkdir()
    (folder / "bin").symlink_to(BIN, target_is_directory=True)
    return folder


def make_repo(src: Path, remote: Path) -> None:
    src.mkdir()
    for name in COPIED:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif origin.exists():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, src / name)
    tiny = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    tiny.update(run="dvc-test", shards=1)
    tiny["dataset"].update(categories=["chair"])
    (src / CONFIG).write_text(yaml.safe_dump(tiny))
    git(src, "init", "-q", "-b", "main")
    sh([str(BIN / "dvc"), "remote", "add", "-d", "-f", "storage", str(remote)], src)
    git(src, "add", ".")
    git(src, "commit", "-q", "-m", "workflow copy")


def test_pull_in_fresh_clone_plans_no_expensive_rule(tmp_path: Path, venv: Path) -> None:
    src, remote, clone = tmp_path / "src", tmp_path / "remote", tmp_path / "clone"
    make_repo(src, remote)
    sh([str(BIN / "snakemake"), "--cores", "2", "--configfile", CONFIG], src)
    make(src, "push", venv)
    assert any(remote.rglob("*")), "dvc push stored nothing in the remote"
    git(src, "add", "data.dvc", "results.dvc")
    git(src, "commit", "-q", "-m", "artifacts")

    git(tmp_path, "clone", "-q", str(src), str(clone))
    assert not (clone / "results").exists() and not (clone / "data").exists()
    make(clone, "pull", venv)
    pulled = clone / "results" / "dvc-test"
    assert (pulled / "features" / "bt3d" / "chair" / "shard-0.npz").is_file()
    assert (pulled / "tables" / "miou.csv").read_bytes() == (
        src / "results" / "dvc-test" / "tables" / "miou.csv"
    ).read_bytes()
    assert planned(clone) == {}

    # Only what is really missing is planned: tables and plots, nothing upstream.
    shutil.rmtree(pulled / "tables")
    plan = planned(clone)
    assert plan.get("aggregate") == 1 and plan.get("plot_curves") == 1
    assert not {"features", "geodesics", "optimize", "prototypes", "synthetic"} & set(plan)
