"""Shared plumbing of the workflow's scripts: logging, clean errors, shape selection.

Scripts run by Snakemake's ``script:`` directive import this module (their folder is on
``sys.path``). It puts the repository root on ``sys.path`` too, so ``bt3d`` imports in a
conda env where the package is not installed. No maths lives here.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def run(main: Callable[[Any], None], snakemake: Any) -> None:
    """Run ``main(snakemake)`` with stdout/stderr going to the rule's log file.

    A :class:`bt3d.errors.Bt3dError` becomes one line ``ErrorType: message`` in the log and
    on the terminal, and exit status 1; any other exception leaves its traceback in the log.
    """
    from bt3d.errors import Bt3dError

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
    annotated models (labelled shapes first, then test shapes); shape ``i`` of it belongs to
    shard ``i % shards``. Shard membership is fixed by config alone, so the workflow's DAG
    does not depend on the dataset's contents.
    """
    from bt3d.io import class_id_of, few_shot_split, read_sample_order

    labelled, test = few_shot_split(
        read_sample_order(sample_order),
        class_id_of(category),
        selection["shots"],
        offset=selection["offset"],
        max_test=selection["max_test_shapes"],
        available=dataset.annotations(category).keys(),
    )
    shards = selection["shards"]
    ordered = [(m, True) for m in labelled] + [(m, False) for m in test]
    mine = [(m, is_labelled) for i, (m, is_labelled) in enumerate(ordered) if i % shards == shard]
    return [m for m, lab in mine if lab], [m for m, lab in mine if not lab]


def read_geodesic_shard(path: str) -> dict[str, Any]:
    """A geodesics shard: ``model_ids`` list, ``labelled`` (S,), ``geodesic`` (S, N, N)
    float16 normalised, ``scale`` (S,) (raw = normalised * scale)."""
    from bt3d.cache import load_arrays

    arrays, _ = load_arrays(path, {"kind": "geodesics"})
    return {
        "model_ids": [str(m) for m in arrays["model_ids"]],
        "labelled": arrays["labelled"].astype(bool),
        "geodesic": arrays["geodesic"],
        "scale": arrays["scale"],
    }


def read_feature_shard(path: str) -> dict[str, Any]:
    """A features shard: ``model_ids`` list and ``features`` (S, N, C) float32."""
    from bt3d.cache import load_arrays

    arrays, _ = load_arrays(path, {"kind": "features"})
    return {"model_ids": [str(m) for m in arrays["model_ids"]], "features": arrays["features"]}
