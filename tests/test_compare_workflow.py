"""End-to-end: shot sets and variants in one run of the real snakemake CLI (config/test.yaml
with two shot sets and three variants, chairs only). Slow; CI runs it (`make test`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
TEST_CONFIG = REPO / "config" / "test.yaml"
RESULTS = Path("results") / "compare-test"
COMPARE = """\
run: compare-test
dataset:
  categories: [chair]
  shots: 2
  shot_sets: 2
  synthetic: {shapes_per_category: 6}
variants:
  - {name: mean, config: {}}
  - {name: sum, config: {optimiser: {prototype_reduction: sum}}}
  - {name: bilinear, config: {features: {sampling: bilinear}}}
"""

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> str:
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(TEST_CONFIG), str(workdir / "compare.yaml"), *args]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=workdir)
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"snakemake {' '.join(args)} failed:\n{out[-4000:]}"
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("compare")
    (workdir / "compare.yaml").write_text(COMPARE)
    return workdir, snakemake(workdir, "--cores", "2")


def test_each_shapes_features_are_computed_once_per_feature_setting(run) -> None:  # noqa: ANN001
    workdir, out = run
    jobs = re.findall(r"^(?:local)?rule (\w+):", out, flags=re.MULTILINE)
    # geodesics and features per part (shots of both shot sets, two test shards); mean and
    # sum share their features, bilinear has its own; prototypes per shot set and variant
    # whose prototypes differ; predictions per variant, shot set and queried part.
    assert {r: jobs.count(r) for r in ("geodesics", "features", "prototypes", "optimize")} == {
        "geodesics": 3, "features": 6, "prototypes": 6, "optimize": 18,
    }  # fmt: skip
    for key in ("mean", "bilinear"):
        logs = sorted((workdir / "logs" / "compare-test" / "features" / key).glob("*.log"))
        seen = re.findall(r"^(\S+): \(\d+, \d+\) features", "".join(p.read_text() for p in logs),
                          flags=re.MULTILINE)  # fmt: skip
        assert len(seen) == len(set(seen)) == 6, seen  # 4 labelled + 2 test shapes, once each
    assert not (workdir / RESULTS / "features" / "sum").exists()


def test_a_shot_set_never_queries_its_own_shapes(run) -> None:  # noqa: ANN001
    from bt3d.fewshot import KeypointPrototypes

    workdir, _ = run
    (metrics,) = [json.loads((workdir / RESULTS / "metrics/mean/chair.json").read_text())]
    queried = {s["name"]: set(s["test_shapes"]) for s in metrics["shot_sets"]}
    shots = {}
    for k in (0, 1):
        path = workdir / RESULTS / "prototypes" / "mean" / "chair" / f"set-{k}.npz"
        shots[f"set-{k}"] = set(KeypointPrototypes.load(path).shot_ids)
    assert len(shots["set-0"]) == len(shots["set-1"]) == 2 and not shots["set-0"] & shots["set-1"]
    for name in ("set-0", "set-1"):
        other = shots["set-1" if name == "set-0" else "set-0"]
        assert not queried[name] & shots[name] and other <= queried[name]
        assert len(queried[name]) == 4  # the other set's 2 shapes and the 2 test shapes


def test_tables_give_every_variant_with_shot_set_spread_and_intervals(run) -> None:  # noqa: ANN001
    workdir, _ = run
    miou = pd.read_csv(workdir / RESULTS / "tables" / "miou.csv")
    assert miou["variant"].unique().tolist() == ["mean", "sum", "bilinear"]
    assert len(miou) == 3 * 11 and (miou["shot_sets"] == 2).all() and (miou["shapes"] == 4).all()
    assert miou["std"].notna().all()
    assert (miou["ci_low"] <= miou["miou"] + 1e-9).all()
    assert (miou["miou"] <= miou["ci_high"] + 1e-9).all()
    text = (workdir / RESULTS / "tables" / "miou.md").read_text()
    assert "mean over 2 shot sets" in text and "std across shot sets" in text


def test_comparison_table_and_plot_are_paired_to_the_first_variant(run) -> None:  # noqa: ANN001
    workdir, _ = run
    table = pd.read_csv(workdir / RESULTS / "tables" / "comparison.csv")
    miou = pd.read_csv(workdir / RESULTS / "tables" / "miou.csv").set_index(
        ["variant", "threshold"]
    )
    assert set(table["reference"]) == {"mean"} and set(table["variant"]) == {"sum", "bilinear"}
    chair = table[(table["metric"] == "miou") & (table["category"] == "chair")]
    for _, row in chair.iterrows():
        expected = (
            miou.loc[(row["variant"], row["threshold"]), "miou"]
            - miou.loc[("mean", row["threshold"]), "miou"]
        )
        assert row["difference"] == pytest.approx(expected, abs=1e-5)
        assert row["ci_low"] <= row["difference"] + 1e-9 <= row["ci_high"] + 2e-9
    plot = workdir / RESULTS / "plots" / "comparison.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_second_dry_run_plans_nothing(run) -> None:  # noqa: ANN001
    workdir, _ = run
    assert "Nothing to be done" in snakemake(workdir, "-n")
    assert np.isfinite(pd.read_csv(workdir / RESULTS / "tables" / "pck.csv")["pck"]).all()
