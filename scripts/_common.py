"""Shared plumbing of the workflow's scripts (bt3d.jobs): no logic here.

Scripts run by Snakemake's ``script:`` directive import this module (their folder is on
``sys.path``); it puts the repository root on ``sys.path`` too, so ``bt3d`` imports in a
conda env where the package is not installed.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bt3d.jobs import dataset, provenance, run  # noqa: E402

__all__ = ["dataset", "provenance", "run"]
