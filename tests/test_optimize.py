"""Keypoint candidate optimisation: the reference objective, both solvers, seeds, batching."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bt3d.errors import ConfigError, DataError
from bt3d.fewshot import KeypointPrototypes, LabelledShape, build_prototypes
from bt3d.optimize import (
    SolverOptions,
    _batch_assignment,
    _batch_loss,
    build_batch,
    optimise_batch,
    optimise_keypoints,
    optimise_reference,
    reference_loss,
)


def _numpy_loss(x, f, d, f_kp, d_kp, alpha, beta):
    """The paper's loss written out with numpy, element by element where it matters."""
    k = f_kp.shape[0]
    e = np.exp(x - x.max(axis=1, keepdims=True))
    s = (e / e.sum(axis=1, keepdims=True))[:, :k]
    feature = np.sqrt(((s.T @ f - f_kp) ** 2).sum())
    sds = s.T @ d @ s
    sq = sum((sds[i, j] - d_kp[i, j]) ** 2 for i in range(k) for j in range(k) if d_kp[i, j] > 0)
    reward = sum(s[:, j].max() - s[:, j].mean() for j in range(k))
    return feature + alpha * np.sqrt(sq) - beta * reward


def _tiny(seed=0, n=6, k=3, c=4):
    rng = np.random.default_rng(seed)
    pts = rng.random((n, 2))
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    d_kp = np.array([[0.0, 0.3, 0.0], [0.3, 0.0, 0.5], [0.0, 0.5, 0.0]])[:k, :k]
    return (
        rng.normal(size=(n, k + 1)),
        rng.normal(size=(n, c)),
        d / d.max(),
        rng.normal(size=(k, c)),
        d_kp,
    )


@pytest.mark.parametrize("beta", [0.0, 0.7])
def test_reference_loss_matches_numpy(beta):
    x, f, d, f_kp, d_kp = _tiny()
    want = _numpy_loss(x, f, d, f_kp, d_kp, alpha=4.0, beta=beta)
    t = [torch.tensor(a, dtype=torch.float64) for a in (x, f, d, f_kp, d_kp)]
    got = reference_loss(*t, alpha=4.0, beta=beta).item()
    assert got == pytest.approx(want, rel=1e-12)
    if beta:  # the reward lowers the loss
        assert got < reference_loss(*t, alpha=4.0, beta=0.0).item()


def test_zero_target_distances_are_excluded():
    x, f, d, f_kp, d_kp = _tiny()
    t = [torch.tensor(a, dtype=torch.float64) for a in (x, f, d, f_kp, d_kp)]
    base = reference_loss(*t).item()
    # pairs with D_kp == 0 (here the diagonal and pair (0, 2)) do not enter the loss: it
    # equals the loss computed over the positive pairs only, and differs from the full norm
    masked = torch.tensor(d_kp == 0)
    assert masked.sum() == 5
    s = torch.softmax(t[0], dim=1)[:, :3]
    sds = s.T @ t[2] @ s
    feature = torch.linalg.matrix_norm(s.T @ t[1] - t[3])
    positive = ((sds - t[4]) ** 2)[~masked].sum().sqrt()
    assert base == pytest.approx((feature + 4.0 * positive).item(), rel=1e-12)
    everything = ((sds - t[4]) ** 2).sum().sqrt()
    assert base != pytest.approx((feature + 4.0 * everything).item(), rel=1e-6)


def test_no_keypoint_column_takes_mass_out_of_the_loss():
    """S_k excludes the K+1-th column: a dominant last column zeroes S_k."""
    x, f, d, f_kp, d_kp = _tiny()
    x[:, -1] = 60.0
    t = [torch.tensor(a, dtype=torch.float64) for a in (x, f, d, f_kp, d_kp)]
    want = np.linalg.norm(f_kp) + 4.0 * np.linalg.norm(d_kp[d_kp > 0])
    assert reference_loss(*t).item() == pytest.approx(want, rel=1e-9)
    x[:, -1] = -60.0  # and without it every row's mass is on the keypoints
    s = torch.softmax(torch.tensor(x), dim=1)[:, :-1]
    np.testing.assert_allclose(s.sum(dim=1).numpy(), 1.0)


def test_restricted_loss_equals_reference_with_excluded_logits_at_minus_inf():
    """The fast solver's loss (candidates, exact QR projection when C > |U|) is the paper's."""
    rng = np.random.default_rng(3)
    n, k, c = 40, 3, 50
    f = torch.tensor(rng.normal(size=(n, c)), dtype=torch.float32)
    pts = rng.random((n, 3))
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    d = torch.tensor(dist / dist.max(), dtype=torch.float32)
    f_kp = torch.tensor(rng.normal(size=(k, c)), dtype=torch.float32)
    d_kp = torch.tensor([[0, 0.2, 0.4], [0.2, 0, 0.0], [0.4, 0.0, 0]], dtype=torch.float32)
    options = SolverOptions(candidates=5, init="noise", temperature=0.05, seed=1, project=True)
    batch = build_batch([(f, d)], f_kp, options)
    assert batch.features.shape[2] < c  # projected
    s = _batch_assignment(batch.init, batch.allowed)
    got = _batch_loss(s, batch, d_kp, (d_kp > 0).float(), 4.0, 0.5)[0]
    x = torch.full((n, k + 1), -1e4)
    x[:, k] = 0.0  # points outside the candidates are "no keypoint" for sure
    rows = batch.points[0]
    x[rows, k] = batch.init[0, :, k]
    x[rows, :k] = torch.where(batch.allowed[0], batch.init[0, :, :k], torch.tensor(-1e4))
    want = reference_loss(x, f, d, f_kp, d_kp, 4.0, 0.5)
    assert got.item() == pytest.approx(want.item(), rel=1e-4)


def _planted(seed=0, side=8, c=16, noise=0.05):
    """A flat grid shape whose point features single out 4 planted keypoints.

    Returns prototypes (from the clean shape), the test problem (noisy features) and the truth.
    """
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2) / (side - 1)
    dist = np.linalg.norm(g[:, None] - g[None], axis=-1)
    d = dist / dist.max()
    f = rng.normal(0.0, 1.0, size=(len(g), c)).astype(np.float32)
    truth = np.array([5, 20, 37, 50])
    ids = np.array([3, 1, 8, 4])
    protos = build_prototypes([LabelledShape(f, d, ids, truth, "planted")])
    test = f + rng.normal(0.0, noise, size=f.shape).astype(np.float32)
    order = np.argsort(ids)
    return protos, test, d, truth[order]


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_recovers_planted_keypoints(mode):
    protos, f, d, truth = _planted()
    steps = 600 if mode == "reference" else None
    pred = optimise_keypoints(f, d, protos, mode=mode, steps=steps, seed=1)
    np.testing.assert_array_equal(pred.semantic_ids, [1, 3, 4, 8])
    np.testing.assert_array_equal(pred.indices, truth)
    assert pred.indices.dtype == np.int64 and pred.confidences.dtype == np.float32
    assert np.all((pred.confidences > 0.5) & (pred.confidences <= 1.0))
    assert np.isfinite(pred.final_loss) and pred.steps_run >= 1
    if mode == "fast":
        assert pred.steps_run < 300  # stopped early


@pytest.mark.parametrize(
    "mode,options",
    [("reference", {}), ("fast", {}), ("fast", {"init": "noise", "candidates": None, "tol": 0})],
)
def test_same_seed_is_bit_identical(mode, options):
    protos, f, d, _ = _planted(noise=0.5)
    run = [
        optimise_keypoints(f, d, protos, mode=mode, steps=40, seed=s, **options) for s in (7, 7, 8)
    ]
    np.testing.assert_array_equal(run[0].indices, run[1].indices)
    np.testing.assert_array_equal(run[0].confidences, run[1].confidences)
    assert run[0].final_loss == run[1].final_loss
    if options.get("init", "noise" if mode == "reference" else "similarity") == "noise":
        assert run[0].final_loss != run[2].final_loss  # the seed sets the start


def test_batch_mode_reference_matches_single_reference():
    protos, f, d, _ = _planted(noise=0.5)
    single = optimise_reference(f, d, protos, steps=30, seed=2)
    (batched,) = optimise_batch([(f, d)], protos, mode="reference", steps=30, seed=2)
    np.testing.assert_array_equal(single.indices, batched.indices)
    np.testing.assert_allclose(single.confidences, batched.confidences, rtol=1e-4)
    assert single.final_loss == pytest.approx(batched.final_loss, rel=1e-4)
    assert batched.steps_run == 30


def test_batch_keeps_order_and_matches_single_shapes():
    protos, f, d, truth = _planted()
    protos2, f2, d2, _ = _planted(seed=1)
    small_f, small_d = f[:100], d[:100, :100]
    problems = [(f, d), (small_f, small_d), (f2 * 0 + f, d)]
    out = optimise_batch(problems, protos)
    assert len(out) == 3
    single = [optimise_keypoints(a, b, protos) for a, b in problems]
    for got, want in zip(out, single, strict=True):
        np.testing.assert_array_equal(got.indices, want.indices)
        assert got.steps_run == want.steps_run
    np.testing.assert_array_equal(out[0].indices, truth)
    assert np.all(out[1].indices < 100)


def test_errors():
    protos, f, d, _ = _planted()
    with pytest.raises(ConfigError, match="mode"):
        optimise_keypoints(f, d, protos, mode="slow")
    with pytest.raises(DataError, match="channels"):
        optimise_keypoints(f[:, :5], d, protos)
    with pytest.raises(DataError, match="geodesic"):
        optimise_keypoints(f, d[:10], protos)
    with pytest.raises(ConfigError, match="fast"):
        optimise_keypoints(f, d, protos, mode="reference", candidates=8)
    empty = KeypointPrototypes(
        np.zeros(0, np.int64), np.zeros((0, 16), np.float32), np.zeros((0, 0)), np.zeros((0, 0))
    )
    with pytest.raises(DataError, match="no keypoint"):
        optimise_keypoints(f, d, empty)


def _research():
    """benchmarks/optimizer_research.py: the optimiser options production does not use."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from optimizer_research import optimise_research

    return optimise_research


def test_refinement_on_all_points_keeps_the_answer_and_is_deterministic():
    optimise_research = _research()
    protos, f, d, truth = _planted()
    plain = optimise_keypoints(f, d, protos, candidates=2)
    run = [optimise_research([(f, d)], protos, candidates=2, refine_steps=50)[0] for _ in range(2)]
    np.testing.assert_array_equal(run[0].indices, truth)
    np.testing.assert_array_equal(run[0].indices, run[1].indices)
    assert run[0].final_loss == run[1].final_loss
    assert run[0].final_loss <= plain.final_loss + 1e-4
    assert run[0].steps_run > plain.steps_run


def test_several_candidate_sizes_keep_the_lowest_loss_per_shape():
    optimise_research = _research()
    protos, f, d, _ = _planted(noise=0.8)
    protos2, f2, d2, _ = _planted(seed=3, noise=0.8)
    problems = [(f, d), (f2, d2)]
    sizes = (2, 8, None)
    single = {m: optimise_batch(problems, protos, candidates=m) for m in sizes}
    got = optimise_research(problems, protos, candidates=sizes)
    again = optimise_research(problems, protos, candidates=list(sizes))
    for j, pred in enumerate(got):
        losses = [single[m][j].final_loss for m in sizes]
        best = single[sizes[int(np.argmin(losses))]][j]
        assert pred.final_loss == min(losses)
        np.testing.assert_array_equal(pred.indices, best.indices)
        np.testing.assert_array_equal(pred.indices, again[j].indices)
        assert pred.steps_run == sum(single[m][j].steps_run for m in sizes)
    with pytest.raises(ConfigError, match="candidates"):
        optimise_research(problems, protos, candidates=())
    with pytest.raises(ConfigError, match="candidates"):
        optimise_research(problems, protos, candidates=(64, 0))
    with pytest.raises(ConfigError, match="candidates"):  # production takes one size
        optimise_batch(problems, protos, candidates=sizes)


def test_refinement_is_kept_only_when_it_lowers_the_loss():
    optimise_research = _research()
    protos, f, d, _ = _planted(noise=0.8)
    plain = optimise_keypoints(f, d, protos, candidates=4)
    # a start with much mass off the candidates: 3 steps cannot beat stage 1, which is kept
    (rejected,) = optimise_research(
        [(f, d)], protos, candidates=4, refine_steps=3, refine_floor=0.0
    )
    assert rejected.final_loss == plain.final_loss
    np.testing.assert_array_equal(rejected.indices, plain.indices)
    np.testing.assert_array_equal(rejected.confidences, plain.confidences)
    assert rejected.steps_run == plain.steps_run + 3
    (kept,) = optimise_research([(f, d)], protos, candidates=4, refine_steps=50)
    assert kept.final_loss < plain.final_loss
