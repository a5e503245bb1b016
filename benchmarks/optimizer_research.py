"""Research options of the fast keypoint optimiser, kept off the production path.

Measured and left off (docs/findings/optimizer.md): several candidate-set sizes per shape,
each shape keeping the solution with the lowest loss (the loss of a restricted solution is the
true objective on all N points, with the excluded logits at -inf), and a second stage on all
N points (refinement) from the kept solution, taken only where it lowers the loss.
``benchmarks/optimizer.py`` uses them (``--candidates 64 128``, ``--refine-steps``);
:func:`optimise_research` with one size and no refinement is :func:`bt3d.optimize.optimise_batch`.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bt3d.errors import ConfigError  # noqa: E402
from bt3d.fewshot import KeypointPrototypes  # noqa: E402
from bt3d.optimize import (  # noqa: E402
    Prediction,
    Solutions,
    SolverOptions,
    _Batch,
    _pack,
    _project,
    build_batch,
    optimise_groups,
    solve_batch,
)


def candidate_sizes(candidates) -> list[int | None]:
    """``candidates`` (a size, None = all points, or several) as a list of checked sizes."""
    if candidates is None or isinstance(candidates, int | np.integer):
        sizes = [candidates]
    else:
        sizes = list(candidates)
    if not sizes:
        raise ConfigError("optimiser candidates: give at least one candidate-set size")
    return [None if m is None else int(m) for m in sizes]


def _refine_batch(
    starts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    problems: list[tuple[torch.Tensor, torch.Tensor]],
    f_kp: torch.Tensor,
    floor: float,
    project: bool,
) -> _Batch:
    """All-points problems starting from candidate solutions.

    ``starts[i]`` is ``(points (U,), allowed (U, K), logits (U, K+1))`` of problem i, without
    padding rows. Each candidate row keeps its keypoint probabilities exactly (logits
    re-expressed relative to its no-keypoint logit, which becomes 0); every other (point,
    keypoint) logit starts at ``floor`` below the no-keypoint one, i.e. with a small but
    non-zero mass.
    """
    k = f_kp.shape[0]
    parts = []
    for (rows, allowed_u, x), (f, d) in zip(starts, problems, strict=True):
        n = f.shape[0]
        rel = x[:, :k] - x[:, k:]
        init = torch.zeros(n, k + 1, device=f.device)
        init[:, :k] = floor
        init[rows, :k] = torch.where(allowed_u, rel, torch.full_like(rel, floor))
        feats, kp_feats, residual = _project(f, f_kp) if project else (f, f_kp, None)
        allowed = torch.ones(n, k, dtype=torch.bool, device=f.device)
        parts.append(
            (torch.arange(n, device=f.device), allowed, feats, kp_feats, residual, d, n, init)
        )
    return _pack(parts, k, f_kp.device)


def optimise_research(
    problems: list[tuple],
    prototypes: KeypointPrototypes,
    candidates: int | None | tuple[int | None, ...] | list[int | None] = 64,
    refine_steps: int = 0,
    refine_floor: float = -10.0,
    device: str | torch.device = "cpu",
    **options: Any,
) -> list[Prediction]:
    """Fast-mode keypoints (:func:`bt3d.optimize.optimise_batch`) with the research options.

    Args:
        candidates: candidates per keypoint, or several sizes: the problem is solved once per
            size and each shape keeps the solution with the lowest loss.
        refine_steps, refine_floor: a second stage on all points (Adam, at most
            ``refine_steps`` steps, same early stop) from the kept solution, other logits
            ``refine_floor`` below "no keypoint"; a shape takes it only if its loss is lower;
            0 = off.
        options: the other :class:`bt3d.optimize.SolverOptions`.

    Returns:
        One Prediction per input, in input order; ``steps_run`` counts every stage.
    """
    per_size = [
        SolverOptions(candidates=m, **options).for_mode("fast") for m in candidate_sizes(candidates)
    ]

    def solve(shapes: list, f_kp: torch.Tensor, d_kp: torch.Tensor) -> Solutions:
        best: list = [None] * len(shapes)
        starts: list = [None] * len(shapes)
        total = [0] * len(shapes)
        for settings in per_size:
            with torch.no_grad():
                batch = build_batch(shapes, f_kp, settings)
            solutions, logits = solve_batch(batch, d_kp, settings)
            for j, solution in enumerate(solutions):
                total[j] += solution[3]
                if best[j] is None or solution[0] < best[j][0]:
                    valid = batch.allowed[j].any(dim=1)  # real (non-padding) rows
                    starts[j] = (batch.points[j][valid], batch.allowed[j][valid], logits[j][valid])
                    best[j] = solution
        if refine_steps > 0:
            settings = replace(per_size[0], steps=refine_steps)
            with torch.no_grad():
                batch = _refine_batch(starts, shapes, f_kp, refine_floor, settings.project)
            for j, solution in enumerate(solve_batch(batch, d_kp, settings)[0]):
                total[j] += solution[3]
                if solution[0] < best[j][0]:
                    best[j] = solution
        return [(loss, points, conf, total[j]) for j, (loss, points, conf, _) in enumerate(best)]

    return optimise_groups(problems, prototypes, device, solve)
