"""Keypoint candidate optimisation on a test shape (ALGORITHM.md §4).

Unknowns are logits ``X`` of shape (N, K+1): one row per point, one column per keypoint
plus a "no keypoint" column; ``S = softmax(X, dim=1)`` and ``S_k = S[:, :K]``. The loss is

    ||S_k^T F - F_kp||_F + alpha * ||(S_k^T D S_k - D_kp)[D_kp > 0]||_2
        - beta * sum_k (max_n S_nk - mean_n S_nk)

(``beta`` rewards peaked columns, so it is subtracted; 0 in the paper). Keypoint k is
predicted at ``argmax_n S_nk`` with that maximum as its confidence.

Two solvers:

* ``mode="reference"``: the authors' procedure (Adam, lr 0.1, 5000 steps, X from a standard
  normal drawn with a ``torch.Generator`` seeded by ``seed``) on :func:`reference_loss`.
* ``mode="fast"``: the same objective restricted to candidate points. For every keypoint only
  the ``candidates`` points whose features are most similar (cosine) to its prototype may take
  that keypoint; all other logits are fixed at -inf, i.e. those points are "no keypoint" for
  that column and contribute exactly 0 to every term. The loss is evaluated on the union U of
  candidates (|U| <= K * candidates), with D restricted to U x U. When C > |U| the features
  are replaced, exactly, by their coordinates in the row space of F_U (a thin QR), plus the
  constant part of F_kp orthogonal to it. X starts from the cosine similarities divided by
  ``temperature`` (not noise), with the no-keypoint logit at log(candidates), and Adam stops
  early once the relative loss change between checks falls under ``tol`` and the predicted
  indices stop changing. ``benchmarks/optimizer.py``
  measures speed and accuracy against the reference.

Why these defaults (candidates, start, early stopping, no restarts or refinement): the
measurements are in docs/findings/optimizer.md; the options measured and kept off (several
candidate-set sizes, refinement on all points) are in ``benchmarks/optimizer_research.py``.

Everything runs on the device passed in (CPU or CUDA); on CPU the same inputs and seed give
bit-identical predictions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from bt3d.errors import ConfigError, DataError
from bt3d.fewshot import KeypointPrototypes

MODES = ("fast", "reference")
INITS = ("similarity", "noise")
REFERENCE_STEPS = 5000
FAST_MAX_STEPS = 300


@dataclass(frozen=True)
class Prediction:
    """Predicted keypoints of one test shape.

    Attributes:
        semantic_ids: (K,) int64 semantic id of each keypoint (the prototypes' order).
        indices: (K,) int64 predicted point index of each keypoint.
        confidences: (K,) float32 ``max_n S_nk``.
        steps_run: optimiser steps actually taken.
        final_loss: the loss at the returned logits.
    """

    semantic_ids: np.ndarray
    indices: np.ndarray
    confidences: np.ndarray
    steps_run: int
    final_loss: float


Solutions = list[tuple[float, torch.Tensor, torch.Tensor, int]]
"""Per shape of a group: ``(loss, points (K,), confidences (K,), steps run)``."""

GroupSolver = Callable[
    [list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, torch.Tensor], Solutions
]
"""``solve(shapes [(features (N, C), geodesic (N, N))], f_kp (K, C), d_kp (K, K))`` for
shapes of equal N."""


@dataclass(frozen=True)
class SolverOptions:
    """Settings of :func:`optimise_batch` besides mode and device (the module docstring
    explains the fast-mode ones); ``steps`` None is the mode's budget."""

    steps: int | None = None
    lr: float = 0.1
    alpha: float = 4.0
    beta: float = 0.0
    seed: int = 0
    candidates: int | None = 64
    init: str = "similarity"
    temperature: float = 0.05
    tol: float = 1e-3
    check_every: int = 10
    project: bool = True

    def for_mode(self, mode: str) -> SolverOptions:
        """Checked, with the mode's step budget; ``"reference"`` solves on all points from
        noise, without early stop or projection (its fast-mode settings are ignored)."""
        if mode not in MODES:
            raise ConfigError(f"optimiser mode {mode!r} unknown; expected one of {MODES}")
        if mode == "reference":
            steps = REFERENCE_STEPS if self.steps is None else self.steps
            return replace(self, steps=steps, candidates=None, init="noise", tol=0.0, project=False)
        m = self.candidates
        if self.init not in INITS:
            raise ConfigError(f"optimiser init {self.init!r} unknown; expected one of {INITS}")
        if m is not None and (not isinstance(m, int | np.integer) or m < 1):
            raise ConfigError(f"optimiser candidates must be >= 1 or None, got {m!r}")
        if self.temperature <= 0:
            raise ConfigError(f"optimiser temperature must be > 0, got {self.temperature}")
        return replace(self, steps=FAST_MAX_STEPS if self.steps is None else self.steps)


def reference_loss(
    logits: torch.Tensor,
    features: torch.Tensor,
    geodesic: torch.Tensor,
    keypoint_features: torch.Tensor,
    keypoint_distances: torch.Tensor,
    alpha: float = 4.0,
    beta: float = 0.0,
) -> torch.Tensor:
    """The paper's objective, written as stated (ALGORITHM §4).

    Args:
        logits: (N, K+1) X.
        features: (N, C) F.
        geodesic: (N, N) D, normalised geodesic distances.
        keypoint_features: (K, C) F_kp.
        keypoint_distances: (K, K) D_kp; only entries > 0 enter the distance term.

    Returns:
        Scalar tensor.
    """
    k = keypoint_features.shape[0]
    s = torch.softmax(logits, dim=1)[:, :k]
    feature_term = torch.linalg.matrix_norm(s.T @ features - keypoint_features)
    mask = keypoint_distances > 0
    distance_term = torch.linalg.vector_norm((s.T @ geodesic @ s - keypoint_distances)[mask])
    reward = (s.max(dim=0).values - s.mean(dim=0)).sum()
    return feature_term + alpha * distance_term - beta * reward


def _as_tensor(x, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(
        device=device, dtype=torch.float32
    )


def _check_problem(features, geodesic, prototypes: KeypointPrototypes, name: str) -> None:
    f_shape, d_shape = tuple(features.shape), tuple(geodesic.shape)
    if len(f_shape) != 2 or f_shape[0] == 0:
        raise DataError(f"{name}: features must be a non-empty (N, C) array, got {f_shape}")
    n, c = f_shape
    if d_shape != (n, n):
        raise DataError(f"{name}: geodesic_normalised must be ({n}, {n}), got {d_shape}")
    if prototypes.features.shape[1] != c:
        raise DataError(
            f"{name}: features have {c} channels, the keypoint prototypes "
            f"{prototypes.features.shape[1]}"
        )
    if prototypes.num_keypoints == 0:
        raise DataError(f"{name}: the keypoint prototypes hold no keypoint")


def _initial_noise(n: int, k: int, seed: int, device: torch.device) -> torch.Tensor:
    """(N, K+1) standard normal, drawn on CPU so that every device starts from the same X."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(n, k + 1, generator=gen, dtype=torch.float32).to(device)


def _prediction(
    s: torch.Tensor, index_map: torch.Tensor | None, ids: np.ndarray, steps: int, loss: float
) -> Prediction:
    """Argmax over points of each keypoint column of ``s`` (P, K); map rows to point ids."""
    conf, rows = s.max(dim=0)
    idx = rows if index_map is None else index_map[rows]
    return Prediction(
        semantic_ids=np.asarray(ids, dtype=np.int64).copy(),
        indices=idx.cpu().numpy().astype(np.int64),
        confidences=conf.detach().cpu().numpy().astype(np.float32),
        steps_run=int(steps),
        final_loss=float(loss),
    )


def optimise_reference(
    features,
    geodesic_normalised,
    prototypes: KeypointPrototypes,
    steps: int = REFERENCE_STEPS,
    lr: float = 0.1,
    alpha: float = 4.0,
    beta: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Prediction:
    """The authors' optimisation: Adam on :func:`reference_loss` from standard-normal logits.

    Args:
        features: (N, C) point features of the test shape (numpy or torch).
        geodesic_normalised: (N, N) normalised geodesic distances.
        prototypes: keypoint features (K, C) and target distances (K, K).
    """
    device = torch.device(device)
    _check_problem(features, geodesic_normalised, prototypes, "optimise_reference")
    f = _as_tensor(features, device)
    d = _as_tensor(geodesic_normalised, device)
    f_kp = _as_tensor(prototypes.features, device)
    d_kp = _as_tensor(prototypes.target_distances, device)
    x = _initial_noise(f.shape[0], f_kp.shape[0], seed, device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(int(steps)):
        opt.zero_grad(set_to_none=True)
        loss = reference_loss(x, f, d, f_kp, d_kp, alpha, beta)
        loss.backward()
        opt.step()
    with torch.no_grad():
        loss = reference_loss(x, f, d, f_kp, d_kp, alpha, beta)
        s = torch.softmax(x, dim=1)[:, : f_kp.shape[0]]
    return _prediction(s, None, prototypes.semantic_ids, steps, loss.item())


# ----------------------------------------------------------------------------- fast solver


@dataclass
class _Batch:
    """B candidate-restricted problems padded to a common size (tensors on one device).

    points: (B, U) int64 original point index of each candidate row (padding: 0).
    allowed: (B, U, K) bool, keypoint k may sit at row u (padding rows: all False).
    features: (B, U, C') candidate features, in row-space coordinates when projected.
    kp_features: (B, K, C') prototypes in the same coordinates.
    kp_residual: (B, 1) norm of the prototype part orthogonal to the candidates' row space.
    geodesic: (B, U, U) D restricted to the candidates.
    n_points: (B, 1) original N of each shape (for the reward's mean over all points).
    init: (B, U, K+1) initial logits.
    """

    points: torch.Tensor
    allowed: torch.Tensor
    features: torch.Tensor
    kp_features: torch.Tensor
    kp_residual: torch.Tensor
    geodesic: torch.Tensor
    n_points: torch.Tensor
    init: torch.Tensor


def _candidates(f: torch.Tensor, f_kp: torch.Tensor, m: int) -> tuple[torch.Tensor, ...]:
    """Cosine similarity (N, K) and the sorted union of each keypoint's top-m points."""
    sim = torch.nn.functional.normalize(f, dim=1) @ torch.nn.functional.normalize(f_kp, dim=1).T
    m = min(m, f.shape[0])
    top = torch.topk(sim, m, dim=0).indices  # (m, K)
    union = torch.unique(top)  # sorted
    allowed = torch.zeros(union.shape[0], f_kp.shape[0], dtype=torch.bool, device=f.device)
    rows = torch.searchsorted(union, top)
    allowed[rows, torch.arange(f_kp.shape[0], device=f.device).expand_as(rows)] = True
    return sim, union, allowed


def _project(f_u: torch.Tensor, f_kp: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Exact change of feature basis to the row space of f_u (U, C) when C > U.

    ||S^T F_u - F_kp||^2 = ||S^T F_u Q - F_kp Q||^2 + ||F_kp - F_kp Q Q^T||^2 for Q (C, U)
    an orthonormal basis of the rows of F_u, so the loss keeps its value.
    """
    u, c = f_u.shape
    if c <= u:
        return f_u, f_kp, torch.zeros((), device=f_u.device)
    q, r = torch.linalg.qr(f_u.T)  # (C, U), (U, U)
    kp_q = f_kp @ q
    residual = torch.linalg.matrix_norm(f_kp - kp_q @ q.T)
    return r.T, kp_q, residual


def build_batch(
    problems: list[tuple[torch.Tensor, torch.Tensor]], f_kp: torch.Tensor, options: SolverOptions
) -> _Batch:
    """The candidate-restricted problems of shapes of equal N, padded into one batch."""
    candidates, init, temperature = options.candidates, options.init, options.temperature
    seed, project = options.seed, options.project
    k = f_kp.shape[0]
    parts = []
    for f, d in problems:
        n = f.shape[0]
        if candidates is None or candidates >= n:
            sim = None
            union = torch.arange(n, device=f.device)
            allowed = torch.ones(n, k, dtype=torch.bool, device=f.device)
            if init == "similarity":
                sim = _candidates(f, f_kp, 1)[0]
        else:
            sim, union, allowed = _candidates(f, f_kp, candidates)
        f_u = f[union]
        feats, kp_feats, residual = _project(f_u, f_kp) if project else (f_u, f_kp, None)
        if init == "noise":
            x0 = _initial_noise(n, k, seed, f.device)[union]
        else:
            s = sim[union]
            x0 = torch.zeros(len(union), k + 1, device=f.device)
            x0[:, :k] = (s - s.max(dim=0).values) / temperature
            # "no keypoint" logit log(M): each keypoint column then starts with a total mass
            # of about one point instead of M / 2, close to where the feature term wants it
            x0[:, k] = math.log(int(allowed.sum(dim=0).max()))
        parts.append((union, allowed, feats, kp_feats, residual, d[union][:, union], n, x0))
    return _pack(parts, k, f_kp.device)


def _pack(parts: list[tuple], k: int, dev: torch.device) -> _Batch:
    """Pad and stack per-problem parts ``(rows, allowed, features, kp_features, residual,
    geodesic, n, init)`` into one :class:`_Batch`."""
    size = max(p[0].shape[0] for p in parts)
    width = max(p[2].shape[1] for p in parts)

    def pad(t: torch.Tensor, shape: tuple[int, ...], value=0) -> torch.Tensor:
        out = torch.full(shape, value, dtype=t.dtype, device=t.device)
        out[tuple(slice(0, s) for s in t.shape)] = t
        return out

    return _Batch(
        points=torch.stack([pad(p[0], (size,)) for p in parts]),
        allowed=torch.stack([pad(p[1], (size, k), False) for p in parts]),
        features=torch.stack([pad(p[2], (size, width)) for p in parts]),
        kp_features=torch.stack([pad(p[3], (k, width)) for p in parts]),
        kp_residual=torch.stack(
            [torch.zeros(1, device=dev) if p[4] is None else p[4].reshape(1) for p in parts]
        ),
        geodesic=torch.stack([pad(p[5], (size, size)) for p in parts]),
        n_points=torch.tensor([[p[6]] for p in parts], dtype=torch.float32, device=dev),
        init=torch.stack([pad(p[7], (size, k + 1)) for p in parts]),
    )


def _batch_assignment(x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """(B, U, K) keypoint part of the row softmax, with disallowed logits at -inf."""
    k = allowed.shape[-1]
    masked = torch.cat([x[..., :k].masked_fill(~allowed, float("-inf")), x[..., k:]], dim=-1)
    return torch.softmax(masked, dim=-1)[..., :k]


def _batch_loss(
    s: torch.Tensor,
    b: _Batch,
    d_kp: torch.Tensor,
    kp_mask: torch.Tensor,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """(B,) reference loss of each problem, evaluated on its candidate rows ``s`` (B, U, K)."""
    residual = s.transpose(1, 2) @ b.features - b.kp_features  # (B, K, C')
    feature_term = torch.linalg.vector_norm(
        torch.cat([residual.flatten(1), b.kp_residual], dim=1), dim=1
    )
    sds = s.transpose(1, 2) @ b.geodesic @ s  # (B, K, K)
    distance_term = torch.linalg.vector_norm((sds - d_kp) * kp_mask, dim=(1, 2))
    loss = feature_term + alpha * distance_term
    if beta:
        reward = (s.max(dim=1).values - s.sum(dim=1) / b.n_points).sum(dim=1)
        loss = loss - beta * reward
    return loss


def solve_batch(
    b: _Batch, d_kp: torch.Tensor, options: SolverOptions
) -> tuple[Solutions, torch.Tensor]:
    """Adam on the batched loss; each problem is frozen (snapshotted) once it converges.

    Returns:
        The solution of each problem (its points as indices into its shape) and the final
        logits (B, U, K+1).
    """
    steps, lr, alpha, beta = options.steps, options.lr, options.alpha, options.beta
    tol, check_every = options.tol, options.check_every
    kp_mask = (d_kp > 0).to(d_kp.dtype)
    x = b.init.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    n_batch = x.shape[0]
    done = [False] * n_batch
    steps_run = [int(steps)] * n_batch
    rows = torch.zeros(n_batch, d_kp.shape[0], dtype=torch.int64, device=x.device)
    conf = torch.zeros(n_batch, d_kp.shape[0], device=x.device)
    final = torch.zeros(n_batch, device=x.device)
    logits = torch.zeros_like(b.init)
    last_loss: torch.Tensor | None = None
    last_rows: torch.Tensor | None = None

    def snapshot(i: int, s: torch.Tensor, loss: torch.Tensor, step: int) -> None:
        c, r = s[i].max(dim=0)
        rows[i], conf[i], final[i] = r, c, loss[i]
        logits[i] = x[i].detach()
        steps_run[i] = step
        done[i] = True

    def result() -> tuple[Solutions, torch.Tensor]:
        points = torch.gather(b.points, 1, rows)
        return [(float(final[j]), points[j], conf[j], steps_run[j]) for j in range(n_batch)], logits

    for step in range(int(steps) + 1):
        opt.zero_grad(set_to_none=True)
        s = _batch_assignment(x, b.allowed)
        losses = _batch_loss(s, b, d_kp, kp_mask, alpha, beta)
        if step == steps:
            break
        if tol > 0 and step > 0 and step % check_every == 0:
            with torch.no_grad():
                cur = losses.detach()
                cur_rows = s.detach().argmax(dim=1)
                if last_loss is not None:
                    rel = (last_loss - cur).abs() / cur.abs().clamp_min(1e-12)
                    stable = (cur_rows == last_rows).all(dim=1)
                    for i in torch.nonzero((rel < tol) & stable).flatten().tolist():
                        if not done[i]:
                            snapshot(i, s.detach(), cur, step)
                last_loss, last_rows = cur, cur_rows
            if all(done):
                return result()
        losses.sum().backward()
        opt.step()
    with torch.no_grad():
        for i in range(n_batch):
            if not done[i]:
                snapshot(i, s.detach(), losses.detach(), int(steps))
    return result()


def optimise_groups(
    problems: list[tuple],
    prototypes: KeypointPrototypes,
    device: str | torch.device,
    solve: GroupSolver,
) -> list[Prediction]:
    """Check every problem, solve the shapes of each point count N together with ``solve``,
    and return one Prediction per problem, in input order."""
    device = torch.device(device)
    f_kp = _as_tensor(prototypes.features, device)
    d_kp = _as_tensor(prototypes.target_distances, device)
    groups: dict[int, list[int]] = {}
    tensors = []
    for i, (f, d) in enumerate(problems):
        _check_problem(f, d, prototypes, f"optimise_batch: test shape {i}")
        tensors.append((_as_tensor(f, device), _as_tensor(d, device)))
        groups.setdefault(int(f.shape[0]), []).append(i)
    out: list[Prediction | None] = [None] * len(problems)
    for members in groups.values():
        solutions = solve([tensors[i] for i in members], f_kp, d_kp)
        for i, (loss, points, conf, steps_run) in zip(members, solutions, strict=True):
            out[i] = Prediction(
                semantic_ids=np.asarray(prototypes.semantic_ids, dtype=np.int64).copy(),
                indices=points.cpu().numpy().astype(np.int64),
                confidences=conf.cpu().numpy().astype(np.float32),
                steps_run=steps_run,
                final_loss=loss,
            )
    return out


def optimise_batch(
    problems: list[tuple],
    prototypes: KeypointPrototypes,
    mode: str = "fast",
    device: str | torch.device = "cpu",
    **options: Any,
) -> list[Prediction]:
    """Optimise keypoints on many test shapes; shapes with equal N share one batched problem.

    Args:
        problems: per test shape ``(features (N, C), geodesic_normalised (N, N))``.
        prototypes: the category's keypoint model (K keypoints, C channels).
        mode: ``"fast"`` (candidate-restricted, similarity start, early stop) or
            ``"reference"`` (all N points, noise start, ``steps`` = 5000 Adam steps, no early
            stop; each shape starts from the same noise as :func:`optimise_reference`).
        options: :class:`SolverOptions` (``steps``: default 5000 (reference) or 300 (fast,
            an upper bound); ``candidates`` per keypoint, None: all points).

    Returns:
        One Prediction per input, in input order.
    """
    settings = SolverOptions(**options).for_mode(mode)

    def solve(shapes: list, f_kp: torch.Tensor, d_kp: torch.Tensor) -> Solutions:
        with torch.no_grad():
            batch = build_batch(shapes, f_kp, settings)
        return solve_batch(batch, d_kp, settings)[0]

    return optimise_groups(problems, prototypes, device, solve)


def optimise_keypoints(
    features,
    geodesic_normalised,
    prototypes: KeypointPrototypes,
    mode: str = "fast",
    steps: int | None = None,
    **options,
) -> Prediction:
    """Predict the prototypes' keypoints on one test shape.

    Args:
        features: (N, C) point features (numpy or torch).
        geodesic_normalised: (N, N) normalised geodesic distances.
        prototypes: keypoint features (K, C) and target distances (K, K).
        mode: ``"reference"`` runs :func:`optimise_reference` (``steps`` default 5000);
            ``"fast"`` the candidate-restricted solver of :func:`optimise_batch`.
        options: ``lr``, ``alpha``, ``beta``, ``seed``, ``device`` of both solvers (their
            defaults), and for ``"fast"`` also ``candidates``, ``init``, ``temperature``,
            ``tol``, ...

    Returns:
        Prediction with K indices into the N points.
    """
    if mode not in MODES:
        raise ConfigError(f"optimiser mode {mode!r} unknown; expected one of {MODES}")
    if mode == "reference":
        fast_options = sorted(set(options) - {"lr", "alpha", "beta", "seed", "device"})
        if fast_options:
            raise ConfigError(f"options {fast_options} only apply to mode='fast'")
        steps = REFERENCE_STEPS if steps is None else steps
        return optimise_reference(features, geodesic_normalised, prototypes, steps, **options)
    problem = [(features, geodesic_normalised)]
    return optimise_batch(problem, prototypes, mode="fast", steps=steps, **options)[0]
