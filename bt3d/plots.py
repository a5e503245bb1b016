"""Figures: mIoU / PCK curves per category and keypoint pictures (matplotlib Agg, seaborn).

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot's global
state, so plotting works in worker processes and headless machines; :func:`save_figure`
writes it atomically and closes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from bt3d.cache import atomic_write  # noqa: E402
from bt3d.errors import ConfigError, DataError  # noqa: E402

CURVE_COLUMNS = ("category", "threshold", "value", "method", "metric_name")
# (elevation, azimuth) in degrees of the default keypoint views: front-left, side, top.
DEFAULT_VIEWS: tuple[tuple[float, float], ...] = ((20.0, -60.0), (10.0, 0.0), (80.0, -90.0))


def plot_curves(
    df: pd.DataFrame,
    *,
    max_threshold: float = 0.1,
    title: str | None = None,
    ylim: tuple[float, float] | None = (0.0, 1.0),
) -> Figure:
    """Curves of a metric against the distance threshold: one panel per (metric, category).

    Args:
        df: long table with columns ``category``, ``threshold``, ``value`` (in [0, 1]),
            ``method`` and ``metric_name`` (e.g. ``"mIoU"``, ``"PCK"``); one line per method;
            optional ``low`` and ``high`` draw a band (an interval) around each line.
        max_threshold: right end of the x axis (0.1 = the paper's range).
        title: optional figure title.
        ylim: the y range; None = fitted to the data, with a line at 0 (differences).

    Returns:
        A figure with ``len(metrics)`` rows and ``len(categories)`` columns, x in
        ``[0, max_threshold]``, y in ``ylim``, a shared legend of methods.
    """
    missing = [c for c in CURVE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"plot_curves: table lacks columns {missing}; it has {list(df.columns)}")
    if df.empty:
        raise DataError("plot_curves: the table of curves is empty")
    categories = list(dict.fromkeys(df["category"]))
    metrics = list(dict.fromkeys(df["metric_name"]))
    methods = list(dict.fromkeys(df["method"]))
    palette = dict(zip(methods, sns.color_palette("colorblind", len(methods)), strict=True))

    nrows, ncols = len(metrics), len(categories)
    fig = Figure(figsize=(3.6 * ncols + 1.8, 3.0 * nrows + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True))
    for r, metric in enumerate(metrics):
        for c, category in enumerate(categories):
            ax = axes[r, c]
            panel = df[(df["metric_name"] == metric) & (df["category"] == category)]
            for method in methods:
                line = panel[panel["method"] == method].sort_values("threshold")
                if line.empty:
                    continue
                ax.plot(
                    line["threshold"],
                    line["value"],
                    marker="o",
                    markersize=3,
                    linewidth=1.6,
                    color=palette[method],
                    label=method,
                )
                if {"low", "high"} <= set(line.columns) and line["low"].notna().any():
                    ax.fill_between(
                        line["threshold"],
                        line["low"],
                        line["high"],
                        color=palette[method],
                        alpha=0.2,
                        linewidth=0,
                    )
            ax.set_xlim(0.0, max_threshold)
            if ylim is None:
                ax.axhline(0.0, color="black", linewidth=0.8)
            else:
                ax.set_ylim(*ylim)
            ax.grid(True, linewidth=0.5, alpha=0.5)
            if r == 0:
                ax.set_title(str(category))
            if r == nrows - 1:
                ax.set_xlabel("geodesic distance threshold")
            if c == 0:
                ax.set_ylabel(str(metric))
    handles = [Line2D([], [], color=palette[m], marker="o", markersize=4, label=m) for m in methods]
    fig.legend(handles=handles, loc="outside right center", title="method", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def metric_curves(
    table: pd.DataFrame, baseline: pd.DataFrame, column: str, metric_name: str
) -> pd.DataFrame:
    """The long table of :func:`plot_curves` from ``miou.csv``/``pck.csv`` (each variant with
    its interval as a band; ``column`` = miou | pck) and ``baseline.csv`` (the first
    variant's random points)."""
    first = table["variant"].iloc[0]
    ours = table.rename(columns={column: "value", "variant": "method", "ci_low": "low",
                                 "ci_high": "high"})  # fmt: skip
    rand = baseline[baseline["variant"] == first][["category", "threshold", column]]
    return pd.concat(
        [
            ours[["category", "threshold", "value", "method", "low", "high"]],
            rand.rename(columns={column: "value"}).assign(method="random points"),
        ],
        ignore_index=True,
    ).assign(metric_name=metric_name)


def plot_differences(table: pd.DataFrame, max_threshold: float = 0.1) -> Figure:
    """Paired differences to the reference variant (``comparison.csv``'s rows): one panel
    per (metric, category and mean), one line per variant with its 95 % interval as a band,
    and a line at zero."""
    reference = table["reference"].iloc[0]
    long = (
        table.drop(columns=["value", "reference_value"])
        .rename(
            columns={"difference": "value", "variant": "method", "ci_low": "low", "ci_high": "high"}
        )
        .assign(
            metric_name=lambda d: d["metric"].map({"miou": "mIoU", "pck": "PCK"}) + " difference"
        )
    )
    return plot_curves(
        long,
        max_threshold=max_threshold,
        title=f"paired difference to {reference} (95 % interval over shot sets and shapes)",
        ylim=None,
    )


def plot_keypoints(
    points: np.ndarray,
    pred_indices: Sequence[int] | np.ndarray,
    gt_indices: Sequence[int] | np.ndarray,
    pred_ids: Sequence[int] | np.ndarray,
    gt_ids: Sequence[int] | np.ndarray,
    title: str = "",
    *,
    views: Sequence[tuple[float, float]] = DEFAULT_VIEWS,
    connect: bool = True,
) -> Figure:
    """Point cloud in grey, ground truth as circles, predictions as crosses, by semantic id.

    Args:
        points: (N, 3) point cloud, y up (ShapeNet convention).
        pred_indices: (P,) indices into ``points`` of the predicted keypoints.
        gt_indices: (K,) indices of the ground-truth keypoints.
        pred_ids: (P,) semantic id of each prediction.
        gt_ids: (K,) semantic id of each ground-truth keypoint.
        title: figure title (e.g. category and model id).
        views: (elevation, azimuth) in degrees, one panel each, side by side.
        connect: draw a thin line from each prediction to the ground truth of the same id.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise DataError(f"plot_keypoints: points must be (N, 3), got {pts.shape}")
    pred_idx, pred_sem = _index_pair(pts, pred_indices, pred_ids, "prediction")
    gt_idx, gt_sem = _index_pair(pts, gt_indices, gt_ids, "ground truth")
    if not views:
        raise ConfigError("plot_keypoints: views must name at least one (elevation, azimuth)")

    fig = Figure(figsize=(4.2 * len(views) + 1.6, 4.6), layout="constrained")
    _draw_keypoints(fig, pts, pred_idx, gt_idx, pred_sem, gt_sem, title, views, connect)
    return fig


def plot_keypoint_rows(
    shapes: Sequence[dict], *, views: Sequence[tuple[float, float]] = DEFAULT_VIEWS
) -> Figure:
    """Several shapes' keypoint pictures (:func:`plot_keypoints`) stacked, one row each.

    Args:
        shapes: per row, the keyword arguments of :func:`plot_keypoints` (``points``,
            ``pred_indices``, ``gt_indices``, ``pred_ids``, ``gt_ids``, ``title``).
        views: (elevation, azimuth) panels of every row.
    """
    if not shapes:
        raise DataError("plot_keypoint_rows: no shapes to draw")
    if not views:
        raise ConfigError("plot_keypoint_rows: views must name at least one (elevation, azimuth)")
    fig = Figure(figsize=(4.2 * len(views) + 1.6, 4.6 * len(shapes)), layout="constrained")
    every_id = sorted(
        {int(i) for shape in shapes for key in ("pred_ids", "gt_ids") for i in shape[key]}
    )
    palette = dict(zip(every_id, _id_colours(len(every_id)), strict=True))  # same on every row
    for row, shape in zip(np.atleast_1d(fig.subfigures(len(shapes), 1)), shapes, strict=True):
        pts = np.asarray(shape["points"], dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise DataError(f"plot_keypoint_rows: points must be (N, 3), got {pts.shape}")
        pred = _index_pair(pts, shape["pred_indices"], shape["pred_ids"], "prediction")
        gt = _index_pair(pts, shape["gt_indices"], shape["gt_ids"], "ground truth")
        title = shape.get("title", "")
        _draw_keypoints(row, pts, pred[0], gt[0], pred[1], gt[1], title, views, True, palette)
    return fig


def _draw_keypoints(  # noqa: ANN001
    fig, pts, pred_idx, gt_idx, pred_sem, gt_sem, title, views, connect, palette=None
) -> None:
    """Draw :func:`plot_keypoints`' panels, legend and title into a figure or subfigure;
    ``palette``: semantic id -> colour (default: one for each id drawn here)."""
    ids = sorted(set(gt_sem.tolist()) | set(pred_sem.tolist()))
    colours = palette or dict(zip(ids, _id_colours(len(ids)), strict=True))
    # matplotlib's 3D axes have z up: show (x, z, y) so that the shape's y axis points up.
    xyz = pts[:, [0, 2, 1]]
    centre = (xyz.max(axis=0) + xyz.min(axis=0)) / 2
    radius = float(np.abs(xyz - centre).max()) or 1.0

    for v, (elev, azim) in enumerate(views):
        ax = fig.add_subplot(1, len(views), v + 1, projection="3d")
        ax.scatter(*xyz.T, s=3, c="0.55", alpha=0.45, depthshade=False, linewidths=0)
        for idx, sem, marker, size in ((gt_idx, gt_sem, "o", 60), (pred_idx, pred_sem, "X", 70)):
            if len(idx) == 0:
                continue
            face = [colours[s] for s in sem]
            if marker == "o":
                ax.scatter(
                    *xyz[idx].T,
                    s=size,
                    facecolors="none",
                    edgecolors=face,
                    linewidths=1.8,
                    depthshade=False,
                )
            else:
                ax.scatter(
                    *xyz[idx].T,
                    s=size,
                    c=face,
                    marker=marker,
                    edgecolors="k",
                    linewidths=0.4,
                    depthshade=False,
                )
        if connect:
            _connect_same_ids(ax, xyz, pred_idx, pred_sem, gt_idx, gt_sem, colours)
        ax.view_init(elev=elev, azim=azim)
        for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre, strict=True):
            setter(c - radius, c + radius)
        ax.set_box_aspect((1, 1, 1), zoom=1.35)
        ax.set_axis_off()
        ax.set_title(f"elev {elev:g}°, azim {azim:g}°", fontsize=9)

    handles = [
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            markerfacecolor="none",
            markeredgecolor="k",
            markersize=8,
            label="ground truth",
        ),
        Line2D([], [], linestyle="", marker="X", color="k", markersize=8, label="prediction"),
    ]
    handles += [
        Line2D([], [], linestyle="", marker="s", color=colours[i], markersize=7, label=f"id {i}")
        for i in ids
    ]
    fig.legend(
        handles=handles,
        loc="outside right center",
        frameon=False,
        fontsize=8,
        ncols=1 if len(handles) <= 18 else 2,
    )
    if title:
        fig.suptitle(title)


def _index_pair(
    points: np.ndarray,
    indices: Sequence[int] | np.ndarray,
    ids: Sequence[int] | np.ndarray,
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate (P,) point indices and (P,) semantic ids; return them as int64 arrays."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    sem = np.asarray(ids, dtype=np.int64).reshape(-1)
    if idx.shape != sem.shape:
        raise DataError(f"plot_keypoints: {what} has {len(idx)} indices but {len(sem)} ids")
    if len(idx) and (idx.min() < 0 or idx.max() >= len(points)):
        raise DataError(
            f"plot_keypoints: {what} index out of range [0, {len(points) - 1}]: "
            f"[{idx.min()}, {idx.max()}]"
        )
    return idx, sem


def _id_colours(n: int) -> list[tuple[float, float, float]]:
    """``n`` distinct colours: tab10 up to 10 ids, then tab20, then husl."""
    if n <= 10:
        return list(sns.color_palette("tab10", n))
    if n <= 20:
        return list(sns.color_palette("tab20", n))
    return list(sns.color_palette("husl", n))


def _connect_same_ids(ax, xyz, pred_idx, pred_sem, gt_idx, gt_sem, colours) -> None:  # noqa: ANN001
    """Thin line from each prediction to the nearest ground truth with the same id."""
    for p, s in zip(pred_idx, pred_sem, strict=True):
        same = gt_idx[gt_sem == s]
        if len(same) == 0:
            continue
        g = same[np.argmin(np.linalg.norm(xyz[same] - xyz[p], axis=1))]
        seg = np.stack([xyz[p], xyz[g]])
        ax.plot(*seg.T, color=colours[s], linewidth=0.9, alpha=0.8)


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix: png, pdf, svg)."""
    dest = Path(path)
    fmt = dest.suffix.lstrip(".").lower()
    if fmt not in ("png", "pdf", "svg"):
        raise ConfigError(f"{dest}: unsupported figure format {fmt!r}; use .png, .pdf or .svg")
    with atomic_write(dest) as handle:
        fig.savefig(handle, format=fmt, dpi=dpi)
    return dest
