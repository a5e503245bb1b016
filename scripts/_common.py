"""Shared plumbing of the workflow's scripts: the log file, clean errors, and the dataset and
provenance a category rule's params name. No logic here.

Scripts run by Snakemake's ``script:`` directive import this module (their folder is on
``sys.path``); it puts the repository root on ``sys.path`` too, so ``bt3d`` imports in a
conda env where the package is not installed.
"""

import contextlib
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def run(main, snakemake) -> None:
    """Run ``main(snakemake)`` with stdout/stderr going to the rule's log file, after removing
    temporaries a killed earlier attempt left beside the outputs. A bt3d error becomes one
    line ``ErrorType: message`` in the log and on the terminal, and exit status 1."""
    from bt3d.atomic import remove_stale_temporaries
    from bt3d.errors import Bt3dError

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


def dataset(snakemake):
    """The rule's KeypointNet dataset (``params.dataset_root``)."""
    from bt3d.io import KeypointNetDataset

    return KeypointNetDataset(snakemake.params.dataset_root)


def provenance(snakemake):
    """What the rule's artifact header records: its category and ``params.provenance``."""
    from bt3d.results import Provenance

    return Provenance(snakemake.wildcards.category, snakemake.params.provenance)
