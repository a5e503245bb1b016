"""The workflow's configuration: schema validation at start, overrides, lint-clean rules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")

jsonschema = pytest.importorskip("jsonschema")


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(yaml.safe_load(SCHEMA.read_text()))


def merged(*files: Path) -> dict:
    """config.yaml deep-updated by each file, as Snakemake merges --configfile."""

    def update(base: dict, new: dict) -> dict:
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                update(base[key], value)
            else:
                base[key] = value
        return base

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for f in files:
        update(cfg, yaml.safe_load(f.read_text()) or {})
    return cfg


@pytest.mark.parametrize("extra", [[], ["config/test.yaml"], ["config/paper.yaml"]])
def test_shipped_configs_are_valid(extra: list[str]) -> None:
    errors = list(validator().iter_errors(merged(*[REPO / e for e in extra])))
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"features": {"sigmaa": 0.1}}, "'sigmaa' was unexpected"),
        ({"colour": "red"}, "'colour' was unexpected"),
        ({"render": {"n_azimuth": "twelve"}}, "'twelve' is not of type 'integer'"),
        ({"optimiser": {"mode": "slow"}}, "'slow' is not one of"),
        ({"device": "gpu"}, "does not match"),
        ({"dataset": {"categories": ["plane"]}}, "'plane' is not one of"),
        ({"shards": 0}, "less than the minimum"),
        ({"evaluation": {"thresholds": "0.1"}}, "is not of type 'array'"),
    ],
)
def test_schema_rejects_bad_values(patch: dict, fragment: str) -> None:
    cfg = merged()
    for section, value in patch.items():
        if isinstance(value, dict) and isinstance(cfg.get(section), dict):
            cfg[section].update(value)
        else:
            cfg[section] = value
    messages = [e.message for e in validator().iter_errors(cfg)]
    assert any(fragment in m for m in messages), messages


def dry_run(workdir: Path, override: str) -> subprocess.CompletedProcess:
    (workdir / "override.yaml").write_text(override)
    return subprocess.run(
        [SNAKEMAKE, "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(workdir / "override.yaml")],
        capture_output=True, text=True, timeout=300, cwd=workdir,
    )  # fmt: skip


def test_unknown_key_fails_at_start_naming_it(tmp_path: Path) -> None:
    result = dry_run(tmp_path, "features:\n  sigmaa: 0.1\n")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "invalid configuration" in out
    assert "features: Additional properties are not allowed ('sigmaa' was unexpected)" in out
    assert not (tmp_path / "results").exists()


def test_wrong_type_fails_at_start_naming_key(tmp_path: Path) -> None:
    result = dry_run(tmp_path, "render:\n  n_azimuth: twelve\n")
    assert result.returncode != 0
    assert "render.n_azimuth: 'twelve' is not of type 'integer'" in result.stdout + result.stderr


def test_valid_override_plans_the_workflow(tmp_path: Path) -> None:
    result = dry_run(tmp_path, (REPO / "config" / "test.yaml").read_text())
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    for rule in ("synthetic", "geodesics", "features", "prototypes", "optimize", "evaluate"):
        assert rule in out


def test_snakemake_lint_is_clean() -> None:
    result = subprocess.run(
        [SNAKEMAKE, "--lint", "--snakefile", str(REPO / "Snakefile")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr
