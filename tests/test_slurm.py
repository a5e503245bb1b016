"""End to end on SLURM: config/test.yaml through `snakemake --profile profiles/slurm`.

Needs a running cluster that this user can submit to (`make test-slurm` installs and starts a
one-node one with tools/slurm-cluster.sh, runs this file and tears it down); skips with the
reason where `sbatch` is absent or no cluster answers. The profile is used as it is, with an
overlay (written here) that only shrinks its per-job resources to the node and caps the sum
of running jobs at the node's size. One optimisation job is cancelled with `scancel` while it
runs; once the rest is done, snakemake is interrupted and run again: the rerun submits only
the missing shard and what reads it, and the tables equal those of a local run of the same
config, byte for byte.

Slow (about five minutes on two cores: the local run, then the cluster run); CI runs it
through `make test-slurm`. With BT3D_SLURM_REPORT set, writes the one-line summary there.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
TEST_CONFIG = REPO / "config" / "test.yaml"
PROFILE = REPO / "profiles" / "slurm"
RULES = {"synthetic", "geodesics", "features", "prototypes", "optimize", "evaluate",
         "plot_keypoints", "keypoint_views", "worst_cases", "aggregate", "plot_curves"}  # fmt: skip
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")

pytestmark = pytest.mark.slow


def cluster_problem() -> str | None:
    """Why no SLURM job can be submitted here, or None when a cluster answers."""
    if shutil.which("sbatch") is None:
        return "sbatch not found: no SLURM here (`make test-slurm` installs a one-node cluster)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                             timeout=30)  # fmt: skip
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld does not answer"
    if out.returncode != 0:
        return f"no SLURM cluster answers: {out.stderr.strip()} (tools/slurm-cluster.sh up)"
    if not re.search(r"^(idle|mixed|allocated)", out.stdout, flags=re.MULTILINE):
        return f"no SLURM node is usable: sinfo says {out.stdout.split()}"
    return None


def node_size() -> tuple[int, int, int]:
    """CPUs, memory (MB) and GPUs of the smallest node of the cluster."""
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%c %m %G"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    nodes = []
    for line in out.splitlines():
        cpus, mem, gres = line.split()
        gpus = re.search(r"gpu(?::[^:,(]+)?:(\d+)", gres)
        nodes.append((int(cpus), int(mem), int(gpus.group(1)) if gpus else 0))
    return min(nodes)


def write_overlay(folder: Path) -> Path:
    """A profile over profiles/slurm that fits its jobs on this cluster's nodes.

    Every per-job size of the real profile is kept where the node holds it and cut to the
    node otherwise; threads are 1 (as in a local run of config/test.yaml); `resources`
    caps what runs at once, which also stacks a group's parallel jobs in series.
    """
    cpus, mem_mb, gpus = node_size()
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    job_mem = max(1000, mem_mb // max(cpus, 1))

    def fit(resources: dict) -> dict:
        fitted = dict(resources)
        if "mem_mb" in fitted:
            fitted["mem_mb"] = min(fitted["mem_mb"], job_mem)
        if "cpus_per_task" in fitted:
            fitted["cpus_per_task"] = 1
        if "gpu" in fitted and gpus == 0:
            del fitted["gpu"]
        return fitted

    overlay = {
        "default-resources": fit(profile["default-resources"]),
        "set-resources": {rule: fit(res) for rule, res in profile["set-resources"].items()},
        "set-threads": {rule: 1 for rule in profile["set-threads"]},
        "resources": {"cpus_per_task": cpus, "mem_mb": mem_mb, "gpu": gpus},
        "slurm-init-seconds-before-status-checks": 2,
        "slurm-keep-successful-logs": True,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return folder


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(TEST_CONFIG), *args]  # fmt: skip


def run(cmd: list[str], cwd: Path, timeout: int = 1200) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    out = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[1:3])}... failed:\n{out[-4000:]}")
    return out


def cancel_one_running(
    prefix: str, process: subprocess.Popen, deadline: float, after_s: int = 3
) -> str:
    """scancel the first job whose comment starts with ``prefix`` once it has run
    ``after_s`` seconds; its job id.

    A job that finished between squeue and scancel is not cancelled; then the next one is
    tried, until sacct confirms a CANCELLED job or the run ends.
    """
    tried = set()
    while time.monotonic() < deadline and process.poll() is None:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %T %M %k"], capture_output=True,
                               text=True).stdout  # fmt: skip
        for line in queue.splitlines():
            job_id, state, elapsed, comment = (line.split(maxsplit=3) + ["", "", ""])[:4]
            ran_s = sum(
                int(x) * 60**i for i, x in enumerate(reversed(elapsed.replace("-", ":").split(":")))
            )
            if (
                state == "RUNNING"
                and ran_s >= after_s
                and comment.startswith(prefix)
                and job_id not in tried
            ):
                tried.add(job_id)
                subprocess.run(["scancel", job_id], check=True)
                time.sleep(2)
                acct = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State"],
                                      capture_output=True, text=True).stdout  # fmt: skip
                if acct.startswith("CANCELLED"):
                    return job_id
        time.sleep(0.2)
    raise AssertionError(f"no running '{prefix}' job could be cancelled (tried: {tried})")


def interrupt_when_stuck(
    process: subprocess.Popen, cancelled: str, log: Path, timeout: float = 900
) -> None:
    """Once every other optimisation job has finished and nothing of the run is queued,
    interrupt snakemake (Ctrl-C).

    snakemake-executor-plugin-slurm 2.8.0 waits forever for a job cancelled with scancel
    (sacct says "CANCELLED by <uid>", which it does not take for a failure), as a user
    would find it; a snakemake that ends by itself (a fixed plugin retrying the job) is
    fine too. Snakemake's own log says how many optimisation jobs it planned and finished.
    Ctrl-C comes only after 30 s in which snakemake's log did not change: a Ctrl-C while a
    job that does not read the cancelled one is still running (a report job submitted just
    after the last optimisation finished) has snakemake scancel it and wait for it as for
    the cancelled one, which hung 2 of 4 runs at commit 12fc6ca. A snakemake still running a
    minute after Ctrl-C gets a second one, as a user would give it.
    """
    query = ["sacct", "-X", "-n", "-P", "-j", cancelled, "-o", "JobName"]
    name = subprocess.run(query, capture_output=True, text=True, check=True).stdout.strip()
    deadline = time.monotonic() + timeout
    quiet_since, last_text = time.monotonic(), ""
    while process.poll() is None and time.monotonic() < deadline:
        text = log.read_text()
        if text != last_text:  # snakemake submitted or finished something
            quiet_since, last_text = time.monotonic(), text
        planned = re.search(r"^optimize\s+(\d+)$", text, flags=re.MULTILINE)
        finished = len(re.findall(r"^Finished jobid: \d+ \(Rule: optimize\)", text, re.M))
        queue = subprocess.run(["squeue", "-h", "--name", name, "-o", "%i"],
                               capture_output=True, text=True).stdout.split()  # fmt: skip
        idle = time.monotonic() - quiet_since > 30  # no job started or ended for 30 s
        if planned and finished == int(planned.group(1)) - 1 and not queue and idle:
            for _ in range(2):  # Ctrl-C, and once more if snakemake has not ended
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=60)
                    return
                except subprocess.TimeoutExpired:
                    continue
            process.wait(timeout=300)
            return
        time.sleep(1)
    if process.poll() is None:
        raise AssertionError("snakemake through SLURM did not finish in time")


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    query = ["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", "JobIDRaw,State"]
    out = subprocess.run(query, capture_output=True, text=True, check=True).stdout
    return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)


def test_workflow_through_slurm_equals_local_run(tmp_path: Path) -> None:
    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    cluster.mkdir()
    run(snakemake_cmd(local, "--cores", "2"), cwd=local)

    overlay = write_overlay(tmp_path / "overlay")
    cmd = snakemake_cmd(cluster, "--profile", str(PROFILE), "--profile", str(overlay))
    first_log = tmp_path / "slurm-run.log"
    with open(first_log, "w") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cluster)
        try:
            cancelled = cancel_one_running("rule_optimize", process, time.monotonic() + 900)
            interrupt_when_stuck(process, cancelled, first_log)
        finally:
            if process.poll() is None:
                process.kill()
    first = first_log.read_text()
    run([*cmd, "--unlock"], cwd=cluster)  # as after any interrupted run: a no-op when clean
    # The rerun resubmits only what is missing: the cancelled shard and what reads it.
    second = run(cmd, cwd=cluster)
    rerun_optimize = {Path(log).parent.name for _, log in SUBMITTED.findall(second)
                      if "rule_optimize" in Path(log).parts}  # fmt: skip
    submitted = SUBMITTED.findall(first) + SUBMITTED.findall(second)
    logs = {job_id: Path(log_file) for job_id, log_file in submitted}
    assert "rule_optimize" in logs[cancelled].parts, logs[cancelled]
    assert rerun_optimize <= {logs[cancelled].parent.name}, rerun_optimize

    job_ids = [job_id for job_id, _ in submitted]
    states = sacct_states(job_ids)
    assert len(job_ids) == len(set(job_ids)) and set(states) == set(job_ids)
    assert states[cancelled].startswith("CANCELLED"), states
    assert {s for j, s in states.items() if j != cancelled} == {"COMPLETED"}, states
    # Every rule ran inside a SLURM job: each job's log holds the rules it ran.
    ran_in_slurm = set()
    for log_file in logs.values():
        text = log_file.read_text() if log_file.exists() else ""
        ran_in_slurm |= set(re.findall(r"^(?:rule|checkpoint) (\w+):", text, flags=re.MULTILINE))
    assert ran_in_slurm == RULES, ran_in_slurm
    for out in (first, second):
        assert not re.search(r"^localrule (?!all:)", out, flags=re.MULTILINE), "ran locally"

    local_tables = sorted((local / "results" / "test" / "tables").iterdir())
    assert [p.name for p in local_tables] == sorted(
        p.name for p in (cluster / "results" / "test" / "tables").iterdir()
    )
    for table in local_tables:
        other = cluster / "results" / "test" / "tables" / table.name
        assert other.read_bytes() == table.read_bytes(), f"{table.name} differs"

    assert "Nothing to be done" in run(cmd + ["-n"], cwd=cluster)

    report = os.environ.get("BT3D_SLURM_REPORT")
    if report:
        Path(report).write_text(
            f"slurm: SLURM job {cancelled} (optimize {logs[cancelled].parent.name}) cancelled "
            f"mid-run with scancel; the rerun submitted {len(SUBMITTED.findall(second))} "
            "jobs (that shard's optimisation and the summary), then nothing was left to do\n"
            f"slurm: {len(job_ids)} jobs submitted through sbatch, tables identical to the "
            "local run\n"
        )
