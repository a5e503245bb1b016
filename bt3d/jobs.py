"""What every workflow job does around its one library call (``scripts/*.py``).

A rule's script is glue: ``run(main, snakemake)`` sends the job's stdout and stderr to its log
file after removing temporaries a killed earlier attempt left beside its outputs, and turns
a bt3d error into one line ``ErrorType: message`` (in the log and on the terminal) and exit
status 1; :func:`dataset` and :func:`provenance` build what a category rule's params name.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bt3d.atomic import remove_stale_temporaries
from bt3d.errors import Bt3dError

if TYPE_CHECKING:  # imported on use: a job imports only what its call needs
    from bt3d.io import KeypointNetDataset
    from bt3d.results import Provenance


def run(main: Callable[[Any], None], snakemake: Any) -> None:
    """Run ``main(snakemake)`` as a job (see the module docstring)."""
    remove_stale_temporaries(list(snakemake.output))
    Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
    with open(snakemake.log[0], "w", encoding="utf-8", buffering=1) as log:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                main(snakemake)
        except Bt3dError as exc:
            print(f"{type(exc).__name__}: {exc}", file=log)
            print(f"[{snakemake.rule}] {type(exc).__name__}: {exc}", file=sys.stderr)
            sys.exit(1)
        except BaseException:
            traceback.print_exc(file=log)
            raise


def dataset(snakemake: Any) -> KeypointNetDataset:
    """The rule's KeypointNet dataset (``params.dataset_root``)."""
    from bt3d.io import KeypointNetDataset

    return KeypointNetDataset(snakemake.params.dataset_root)


def provenance(snakemake: Any) -> Provenance:
    """What the rule's artifact header records: its category and ``params.provenance``."""
    from bt3d.results import Provenance

    return Provenance(snakemake.wildcards.category, snakemake.params.provenance)
