"""Shared plumbing of the workflow's scripts: logging, clean errors, shape selection.

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

MAX_LISTED = 5  # paths listed in a "files missing" message


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


def select_shard(
    dataset: Any, sample_order: str, category: str, selection: dict, shard: int
) -> tuple[list[str], list[str]]:
    """Model ids of one shard: ``(labelled, test)``, each in sample order.

    The category's selection is the few-shot split of the sample order restricted to the
    annotated models (with ``missing_shapes: skip``, to those whose point cloud and mesh
    exist), labelled shapes first, then test shapes; shape ``i`` of it belongs to shard
    ``i % shards``. Shard membership is fixed by config alone, so the workflow's DAG does not
    depend on the dataset's contents. A ``.json`` sample order is the category's annotation
    file: its record order is the order (``dataset.sample_order: annotations``).
    """
    from bt3d.errors import DataError
    from bt3d.io import class_id_of, few_shot_split, read_sample_order

    if Path(sample_order).suffix == ".json":
        order = dataset.annotation_order(category)
    else:
        order = read_sample_order(sample_order)
    annotated = list(dataset.annotations(category))
    skip = selection.get("missing_shapes", "error") == "skip"
    available = dataset.shapes_with_files(category) if skip else annotated
    try:
        labelled, test = few_shot_split(
            order,
            class_id_of(category),
            selection["shots"],
            offset=selection["offset"],
            max_test=selection["max_test_shapes"],
            available=available,
        )
    except DataError as exc:
        if not str(exc).startswith("sample order:"):
            raise
        lacking = len(annotated) - len(available)
        skipped = f"; {lacking} annotated shapes lack their files and were skipped" * (lacking > 0)
        files = dict.fromkeys([str(sample_order), str(dataset.annotation_path(category))])
        raise DataError(
            f"{' + '.join(files)}: {category}: "
            f"{str(exc).removeprefix('sample order: ')} (dataset.shots / dataset.offset)"
            f"{skipped}"
        ) from exc
    shards = selection["shards"]
    ordered = [(m, True) for m in labelled] + [(m, False) for m in test]
    mine = [(m, is_labelled) for i, (m, is_labelled) in enumerate(ordered) if i % shards == shard]
    return [m for m, lab in mine if lab], [m for m, lab in mine if not lab]


def check_files(dataset: Any, category: str, missing_shapes: str) -> int:
    """Point clouds and meshes of the annotated ``category`` shapes that do not exist:
    ``missing_shapes="error"`` raises DataError listing the first of them and the count;
    ``"skip"`` prints a WARNING listing them. Returns the number of shapes lacking files."""
    from bt3d.errors import DataError
    from bt3d.integrity import describe_missing

    lacking = [p.relative_to(dataset.root) for p in dataset.missing_files([category])]
    if not lacking:
        return 0
    listed = describe_missing(lacking, MAX_LISTED)
    if missing_shapes == "error":
        raise DataError(
            f"{dataset.root}: dataset is incomplete for {category}: missing {listed}. Run "
            f"`dvc pull`, or delete annotations/{category}.json to download the category again"
        )
    skipped = len({p.stem for p in lacking})  # a shape's .pcd and .ply are named by its id
    print(
        f"WARNING: {dataset.root}: {category}: skipping {skipped} annotated shapes without "
        f"their files (dataset.missing_shapes: skip): {listed}"
    )
    return skipped


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


def read_geodesic_shard(path: str, expected: dict[str, Any]) -> dict[str, Any]:
    """A geodesics shard: ``model_ids`` list, ``labelled`` (S,), ``geodesic`` (S, N, N)
    float16 normalised, ``scale`` (S,) (raw = normalised * scale), ``skipped_shapes`` (the
    category's annotated shapes left out for lack of files), ``sample_order`` (the file that
    ordered the split)."""
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


def read_feature_shard(path: str, expected: dict[str, Any]) -> dict[str, Any]:
    """A features shard: ``model_ids`` list and ``features`` (S, N, C) float32."""
    arrays, _ = read_artifact(path, expected)
    with rebuild_on_error(path):
        _require(path, arrays, ("model_ids", "features"))
    return {"model_ids": [str(m) for m in arrays["model_ids"]], "features": arrays["features"]}


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
