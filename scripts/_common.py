"""Shared plumbing of the workflow's scripts: logging, clean errors, shape files.

Scripts run by Snakemake's ``script:`` directive import this module (their folder is on
``sys.path``). It puts the repository root on ``sys.path`` too, so ``bt3d`` imports in a
conda env where the package is not installed. No maths lives here.

Artifacts (geodesics, features, prototypes, predictions) carry a header whose
``config_hash`` is :func:`bt3d.cache.config_hash` of the rule's ``params.provenance[kind]``
(the settings that produce that kind, see ``workflow/rules/common.smk``). A consumer reads
them through :func:`read_artifact`: an artifact that is corrupt or whose header does not
match is deleted with the files computed from it (:func:`bt3d.cache.dependents`) and the
job fails with ``CacheError`` naming it, so a plain rerun rebuilds exactly that file and
what depends on it.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def run(main: Callable[[Any], None], snakemake: Any) -> None:
    """Run ``main(snakemake)`` with stdout/stderr going to the rule's log file.

    Temporary files left beside the outputs by a killed earlier attempt are removed first.
    A :class:`bt3d.errors.Bt3dError` becomes one line ``ErrorType: message`` in the log and
    on the terminal, and exit status 1; any other exception leaves its traceback in the log.
    """
    from bt3d.errors import Bt3dError

    remove_stale_temporaries(list(snakemake.output))
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8", buffering=1) as log:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                main(snakemake)
        except Bt3dError as exc:
            line = f"{type(exc).__name__}: {exc}"
            print(line, file=log)
            print(f"[{snakemake.rule}] {line}", file=sys.stderr)
            sys.exit(1)
        except BaseException:
            traceback.print_exc(file=log)
            raise


def remove_stale_temporaries(outputs: list[str]) -> None:
    """Delete ``.<name>.*.tmp`` files (from :func:`bt3d.cache.atomic_write`) beside outputs."""
    for out in outputs:
        path = Path(out)
        if path.parent.is_dir():
            for tmp in path.parent.glob(f".{path.name}.*.tmp"):
                tmp.unlink(missing_ok=True)


def memory_report(device: Any) -> str:
    """``"RSS now X MiB, peak Y MiB"`` of this process (Linux), plus the peak of CUDA
    memory allocated by torch on a CUDA ``device`` (what sizes a GPU run)."""
    import resource

    now = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = str(int(line.split()[1]) // 1024)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux
    report = f"RSS now {now} MiB, peak {peak} MiB"
    if getattr(device, "type", "") == "cuda":
        import torch

        allocated = torch.cuda.max_memory_allocated(device) // 2**20
        report += f", CUDA peak allocated {allocated} MiB"
    return report


def dataset_root(path: str) -> Path:
    """The dataset folder of a file in it: ``annotations/<category>.json`` or the sample
    order ``benchmark_indices.csv`` at its top."""
    p = Path(path)
    return p.parents[1] if p.parent.name == "annotations" else p.parent


def expected_header(snakemake: Any, kind: str, **fields: Any) -> dict[str, Any]:
    """Header fields an artifact of ``kind`` must carry for this job (kind, category, hash)."""
    from bt3d.cache import config_hash

    return {
        "kind": kind,
        "category": snakemake.wildcards.category,
        "config_hash": config_hash(snakemake.params.provenance[kind]),
        **fields,
    }


@contextlib.contextmanager
def rebuild_on_error(path: str) -> Iterator[None]:
    """Turn a CacheError reading the artifact ``path`` into its deletion and a clear error."""
    from bt3d.cache import remove_with_dependents
    from bt3d.errors import CacheError

    try:
        yield
    except CacheError as exc:
        others = remove_with_dependents(path)
        raise CacheError(
            f"{exc}; deleted {path} and {len(others)} files computed from it, rerun to rebuild them"
        ) from exc


def read_artifact(path: str, expected: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(arrays, header)`` of an ``.npz`` artifact whose header must match ``expected``."""
    from bt3d.cache import load_arrays

    with rebuild_on_error(path):
        return load_arrays(path, expected)


def read_geodesic_part(path: str, expected: dict[str, Any]) -> dict[str, Any]:
    """A geodesics part (``shots`` or ``shard-k``): ``model_ids`` list, ``labelled`` (S,),
    ``geodesic`` (S, N, N) float16 normalised, ``scale`` (S,) (raw = normalised * scale),
    ``skipped_shapes`` (the category's annotated shapes left out for lack of files),
    ``sample_order`` (the file that ordered the split)."""
    arrays, header = read_artifact(path, expected)
    with rebuild_on_error(path):
        _require(path, arrays, ("model_ids", "labelled", "geodesic", "scale"))
    return {
        "model_ids": [str(m) for m in arrays["model_ids"]],
        "labelled": arrays["labelled"].astype(bool),
        "geodesic": arrays["geodesic"],
        "scale": arrays["scale"],
        "skipped_shapes": int(header.get("skipped_shapes", 0)),
        "sample_order": str(header.get("sample_order", "")),
    }


def read_feature_part(path: str, expected: dict[str, Any]) -> dict[str, Any]:
    """A features part: ``model_ids`` list and ``features`` (S, N, C) float32; ``counts``
    (S, N) and ``unsmoothed`` (S, N, C) too where the artifact holds them (else None)."""
    arrays, _ = read_artifact(path, expected)
    with rebuild_on_error(path):
        _require(path, arrays, ("model_ids", "features"))
    return {
        "model_ids": [str(m) for m in arrays["model_ids"]],
        "features": arrays["features"],
        "counts": arrays.get("counts"),
        "unsmoothed": arrays.get("unsmoothed"),
    }


def _require(path: str, arrays: dict[str, Any], names: tuple[str, ...]) -> None:
    from bt3d.errors import CacheError

    lacking = [n for n in names if n not in arrays]
    if lacking:
        raise CacheError(f"{path}: artifact lacks arrays {lacking}")


def check_same_shapes(path: str, model_ids: list[str], reference: str, ref_ids: list[str]) -> None:
    """CacheError (deleting ``path``) when its model ids differ from those of ``reference``."""
    from bt3d.errors import CacheError

    if model_ids != ref_ids:
        with rebuild_on_error(path):
            raise CacheError(
                f"{path}: model ids {model_ids[:3]} differ from {reference} {ref_ids[:3]}"
            )


def shape_paths(snakemake: Any) -> list[tuple[str, str]]:
    """``(point cloud, mesh)`` of each shape of the job's part, from its ``shapes`` input (as
    listed by ``shape_files`` in workflow/rules/common.smk: .pcd then .ply per shape)."""
    files = list(snakemake.input.shapes)
    return list(zip(files[0::2], files[1::2], strict=True))


def part_of(path: str) -> str:
    """The part (``shots``, ``shard-k``) an artifact belongs to: its file name's stem."""
    return Path(path).stem
