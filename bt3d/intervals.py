"""Means, spreads and bootstrap intervals of pooled ratios over shot sets and shapes.

mIoU and PCK of a category are pooled ratios: a sum over its query shapes of a numerator
(IoU: ``npos - FN``; PCK: keypoints hit) over a sum of a denominator (IoU: ``npos + FP``;
PCK: keypoints). A run's value is their mean over shot sets. The interval resamples shot
sets with replacement, then, independently for each drawn set, that set's query shapes with
replacement (a two-stage bootstrap): it covers both the choice of labelled shapes and the
choice of test shapes. Arms (variants) are resampled with the same draws, so differences
between arms are paired over the same shot sets and shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bt3d.errors import DataError

EPS = np.finfo(np.float64).eps


def iou_ratio_counts(iou_counts: np.ndarray) -> np.ndarray:
    """(..., 3, T) ``npos, FP, FN`` (:func:`bt3d.metrics.iou_counts`) -> (..., 2, T)
    numerator ``npos - FN`` and denominator ``npos + FP`` of the pooled IoU."""
    c = np.asarray(iou_counts, dtype=np.float64)
    return np.stack([c[..., 0, :] - c[..., 2, :], c[..., 0, :] + c[..., 1, :]], axis=-2)


def pooled(counts: np.ndarray, axis: int = -3) -> np.ndarray:
    """Pooled ratio of (..., S, 2, T) counts, summed over the shapes ``axis``: (..., T)."""
    total = np.asarray(counts, dtype=np.float64).sum(axis=axis)
    return total[..., 0, :] / np.maximum(total[..., 1, :], EPS)


@dataclass(frozen=True)
class Summary:
    """Arms' values over shot sets: ``mean`` (V, T) over shot sets of the pooled ratio,
    ``std`` (V, T) across shot sets (NaN with one), ``draws`` (R, V, T) of the mean under the
    two-stage bootstrap, ``shot_sets`` and ``shapes`` (query shapes per shot set)."""

    mean: np.ndarray
    std: np.ndarray
    draws: np.ndarray
    shot_sets: int
    shapes: list[int]


def summarise(sets: Sequence[np.ndarray], resamples: int, seed: int | Sequence[int]) -> Summary:
    """Mean, spread and bootstrap draws of V arms' pooled ratio over shot sets.

    Args:
        sets: per shot set, (V, S_k, 2, T) numerator/denominator counts of V arms on the
            set's S_k query shapes (the same shapes for every arm).
        resamples: bootstrap draws R.
        seed: of the draws (e.g. ``[seed, category index]`` for independent categories).
    """
    arrays = [np.asarray(s, dtype=np.float64) for s in sets]
    if not arrays:
        raise DataError("no shot set to summarise")
    arms = {a.shape[0] for a in arrays}
    if len(arms) != 1 or any(a.ndim != 4 or a.shape[2] != 2 or len(a[0]) == 0 for a in arrays):
        raise DataError(
            "shot sets' counts must be (V, S_k, 2, T) with S_k >= 1 and the same V; got "
            f"{[a.shape for a in arrays]}"
        )
    values = np.stack([pooled(a) for a in arrays])  # (K, V, T)
    k = len(arrays)
    std = values.std(axis=0, ddof=1) if k > 1 else np.full(values.shape[1:], np.nan)
    rng = np.random.default_rng(seed)
    total = np.zeros((resamples, *values.shape[1:]))
    for _slot in range(k):
        drawn = rng.integers(0, k, size=resamples)  # the set in this slot, per draw
        for j in np.unique(drawn):
            rows = np.flatnonzero(drawn == j)
            n = arrays[j].shape[1]
            weights = rng.multinomial(n, np.full(n, 1.0 / n), size=len(rows))  # (r, S_j)
            sums = np.einsum("rs,vsct->rvct", weights, arrays[j])
            total[rows] += sums[..., 0, :] / np.maximum(sums[..., 1, :], EPS)
    return Summary(values.mean(axis=0), std, total / k, k, [a.shape[1] for a in arrays])


def interval(draws: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval ``(low, high)`` of (R, ...) bootstrap draws."""
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail], axis=0)
    return low, high
