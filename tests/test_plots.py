"""Figures render to valid PNG files of a sensible size, atomically."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bt3d.errors import ConfigError, DataError
from bt3d.plots import plot_curves, plot_keypoints, save_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk; asserts the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _curves() -> pd.DataFrame:
    thresholds = np.round(np.arange(11) * 0.01, 2)
    rows = []
    for category, gain in (("airplane", 1.0), ("chair", 0.8), ("table", 0.6)):
        for method, scale in (("bt3d", 1.0), ("random", 0.3)):
            for metric in ("mIoU", "PCK"):
                values = gain * scale * (1 - np.exp(-thresholds / 0.03))
                rows += [
                    {
                        "category": category,
                        "threshold": t,
                        "value": v,
                        "method": method,
                        "metric_name": metric,
                    }
                    for t, v in zip(thresholds, values, strict=True)
                ]
    return pd.DataFrame(rows)


def _box_points(n: int = 600, seed: int = 0) -> np.ndarray:
    """(n, 3) points on the surface of a box 0.8 x 0.5 x 0.3."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, size=(n, 3))
    axis = rng.integers(0, 3, size=n)
    pts[np.arange(n), axis] = np.sign(pts[np.arange(n), axis])
    return pts * np.array([0.4, 0.25, 0.15])


def test_plot_curves_writes_png_with_panels_and_ranges(tmp_path: Path) -> None:
    fig = plot_curves(_curves(), title="synthetic")
    axes = fig.axes
    assert len(axes) == 6  # 2 metrics x 3 categories
    assert axes[0].get_xlim() == pytest.approx((0.0, 0.1))
    assert axes[0].get_ylim() == pytest.approx((0.0, 1.0))
    assert axes[0].get_ylabel() == "mIoU"
    assert axes[0].get_title() == "airplane"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["bt3d", "random"]
    path = save_figure(fig, tmp_path / "plots" / "miou.png")
    width, height = _png_size(path)
    assert 800 < width < 2500 and 500 < height < 1500
    assert [p.name for p in path.parent.iterdir()] == ["miou.png"]


def test_plot_curves_rejects_tables_without_needed_columns() -> None:
    with pytest.raises(DataError, match="lacks columns.*metric_name"):
        plot_curves(_curves().drop(columns=["metric_name"]))
    with pytest.raises(DataError, match="empty"):
        plot_curves(_curves().iloc[:0])


def test_plot_keypoints_writes_png_with_one_panel_per_view(tmp_path: Path) -> None:
    points = _box_points()
    gt = np.array([0, 10, 20, 30, 40])
    pred = np.array([1, 10, 25, 300])
    fig = plot_keypoints(points, pred, gt, [0, 1, 2, 3], [0, 1, 2, 3, 4], title="box m0")
    assert len(fig.axes) == 3
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == ["ground truth", "prediction"]
    assert labels[2:] == [f"id {i}" for i in range(5)]
    width, height = _png_size(save_figure(fig, tmp_path / "kp.png"))
    assert 1000 < width < 2500 and 400 < height < 900


def test_plot_keypoints_checks_indices_and_ids() -> None:
    points = _box_points(50)
    with pytest.raises(DataError, match="prediction index out of range"):
        plot_keypoints(points, [0, 50], [1], [0, 1], [0])
    with pytest.raises(DataError, match="ground truth has 2 indices but 1 ids"):
        plot_keypoints(points, [0], [1, 2], [0], [0])


def test_save_figure_rejects_unknown_format(tmp_path: Path) -> None:
    fig = plot_curves(_curves())
    with pytest.raises(ConfigError, match="unsupported figure format 'bmp'"):
        save_figure(fig, tmp_path / "x.bmp")
    assert list(tmp_path.iterdir()) == []
