"""Rotatable 3D views of shapes and their keypoints as one self-contained HTML page (plotly).

:func:`shape_traces` turns one shape (a point cloud and named keypoints, optionally more
keypoint sets such as predictions beside the ground truth, and lines joining them) into
plotly traces;
:func:`keypoint_page` puts several shapes into one figure, one 3D scene with a menu that
switches between shapes, and returns a complete HTML document with plotly.js inline (about
4.6 MB), so the page works offline and can be mailed around. One scene (one WebGL context)
serves any number of shapes, which keeps big folders viewable.
"""

from __future__ import annotations

import colorsys
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bt3d.errors import DataError

SURFACE_COLOUR = "rgb(170,170,170)"


@dataclass(frozen=True)
class ShapeView:
    """One shape to show.

    Attributes:
        title: menu entry and heading (e.g. the mesh file name).
        points: (N, 3) surface points, drawn small and grey.
        keypoints: (K, 3) keypoint positions, drawn large, coloured and labelled.
        names: (K,) keypoint names shown next to the markers.
        colours: (K,) CSS colours of the keypoints (``None``: :func:`name_colours`).
        confidences: optional (K,) values shown on hover.
        label: legend entry of the keypoints (shown when ``layers`` adds other sets).
        symbol: plotly 3D marker symbol of the keypoints.
        details: optional (K,) extra hover lines (HTML allowed, e.g. an error).
        layers: further keypoint sets drawn with their own marker (e.g. predictions).
        links: optional (L, 2, 3) segments drawn as thin lines (e.g. prediction to truth).
    """

    title: str
    points: np.ndarray
    keypoints: np.ndarray
    names: Sequence[str]
    colours: Sequence[str] | None = None
    confidences: Sequence[float] | None = field(default=None)
    label: str = "keypoints"
    symbol: str = "circle"
    details: Sequence[str] | None = None
    layers: Sequence[KeypointLayer] = ()
    links: np.ndarray | None = None


@dataclass(frozen=True)
class KeypointLayer:
    """A further keypoint set of a :class:`ShapeView`, with its own marker and no text.

    Attributes:
        label: legend entry (e.g. ``"predicted"``).
        keypoints: (K, 3) positions.
        names: (K,) names shown on hover.
        colours: (K,) CSS colours.
        symbol: plotly 3D marker symbol (``diamond``, ``x``, ``square``, ...).
        details: optional (K,) extra hover lines.
    """

    label: str
    keypoints: np.ndarray
    names: Sequence[str]
    colours: Sequence[str]
    symbol: str = "diamond"
    details: Sequence[str] | None = None


def name_colours(names: Sequence[str]) -> dict[str, str]:
    """A distinct, stable CSS colour per name (hues spread by golden-ratio steps over the
    sorted names), so one keypoint has one colour on every shape."""
    out = {}
    for i, name in enumerate(sorted(set(names))):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85, 0.9)
        out[name] = f"rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})"
    return out


def _checked(view: ShapeView) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(view.points, dtype=np.float64)
    kps = np.asarray(view.keypoints, dtype=np.float64).reshape(-1, 3)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise DataError(f"{view.title}: points must be (N, 3), got {pts.shape}")
    if len(kps) != len(view.names):
        raise DataError(f"{view.title}: {len(kps)} keypoints but {len(view.names)} names")
    return pts, kps


def _hover(names: Sequence[str], label: str, details: Sequence[str] | None) -> list[str]:
    """Hover text per keypoint: its name, the set's label, and its detail line if any."""
    hover = [f"{html.escape(str(n))}<br>{html.escape(label)}" for n in names]
    if details is not None:
        hover = [f"{h}<br>{d}" for h, d in zip(hover, details, strict=True)]
    return hover


def _layer_trace(view: ShapeView, layer: KeypointLayer, visible: bool):
    import plotly.graph_objects as go

    kps = np.asarray(layer.keypoints, dtype=np.float64).reshape(-1, 3)
    if not len(kps) == len(layer.names) == len(layer.colours):
        raise DataError(
            f"{view.title}: {layer.label} has {len(kps)} keypoints, {len(layer.names)} names "
            f"and {len(layer.colours)} colours"
        )
    return go.Scatter3d(
        x=kps[:, 0],
        y=kps[:, 1],
        z=kps[:, 2],
        mode="markers",
        marker={"size": 6, "color": list(layer.colours), "symbol": layer.symbol},
        hovertext=_hover(layer.names, layer.label, layer.details),
        hoverinfo="text",
        name=layer.label,
        legendgroup=layer.label,
        showlegend=True,
        visible=visible,
    )


def _link_trace(view: ShapeView, visible: bool):
    """One line trace of all ``view.links`` segments (separated by gaps)."""
    import plotly.graph_objects as go

    segments = np.asarray(view.links, dtype=np.float64).reshape(-1, 2, 3)
    gaps = np.full((len(segments), 1, 3), np.nan)
    xyz = np.concatenate([segments, gaps], axis=1).reshape(-1, 3)
    return go.Scatter3d(
        x=xyz[:, 0],
        y=xyz[:, 1],
        z=xyz[:, 2],
        mode="lines",
        line={"color": "rgb(60,60,60)", "width": 2},
        hoverinfo="skip",
        connectgaps=False,
        name=f"{view.title}: links",
        showlegend=False,
        visible=visible,
    )


def shape_traces(view: ShapeView, visible: bool = True) -> list:
    """Plotly ``Scatter3d`` traces: the surface points, the labelled keypoints, then one per
    layer and one for the links when there are any."""
    import plotly.graph_objects as go

    pts, kps = _checked(view)
    pts = pts.astype(np.float32)
    colours = list(view.colours) if view.colours is not None else None
    if colours is None:
        table = name_colours(view.names)
        colours = [table[n] for n in view.names]
    hover = [html.escape(str(n)) for n in view.names]
    if view.layers:
        hover = _hover(view.names, view.label, None)
    if view.confidences is not None:
        pairs = zip(hover, view.confidences, strict=True)
        hover = [f"{h}<br>confidence {float(c):.3f}" for h, c in pairs]
    if view.details is not None:
        hover = [f"{h}<br>{d}" for h, d in zip(hover, view.details, strict=True)]
    surface = go.Scatter3d(
        x=pts[:, 0],
        y=pts[:, 1],
        z=pts[:, 2],
        mode="markers",
        marker={"size": 1.5, "color": SURFACE_COLOUR},
        hoverinfo="skip",
        name=f"{view.title}: surface",
        showlegend=False,
        visible=visible,
    )
    keypoints = go.Scatter3d(
        x=kps[:, 0],
        y=kps[:, 1],
        z=kps[:, 2],
        mode="markers+text",
        marker={
            "size": 5,
            "color": colours,
            "symbol": view.symbol,
            "line": {"width": 1, "color": "black"},
        },
        text=[str(n) for n in view.names],
        textposition="top center",
        hovertext=hover,
        hoverinfo="text",
        name=view.label if view.layers else f"{view.title}: keypoints",
        legendgroup=view.label,
        showlegend=bool(view.layers),
        visible=visible,
    )
    traces = [surface, keypoints] + [_layer_trace(view, la, visible) for la in view.layers]
    if view.links is not None and len(view.links):
        traces.append(_link_trace(view, visible))
    return traces


def keypoint_figure(views: Sequence[ShapeView], title: str = "keypoints", up: str = "z"):
    """One plotly figure: a 3D scene showing ``views[0]``, a menu switching between views;
    ``up``: the axis drawn upwards (``"y"`` for ShapeNet/KeypointNet shapes)."""
    import plotly.graph_objects as go

    if not views:
        raise DataError(f"{title}: no shapes to show")
    fig = go.Figure()
    owners = []  # per trace, the index of its view
    for i, view in enumerate(views):
        for trace in shape_traces(view, visible=i == 0):
            fig.add_trace(trace)
            owners.append(i)
    buttons = []
    for i, view in enumerate(views):
        shown = [owner == i for owner in owners]
        buttons.append(
            {
                "label": view.title,
                "method": "update",
                "args": [{"visible": shown}, {"title": {"text": f"{title}: {view.title}"}}],
            }
        )
    fig.update_layout(
        title={"text": f"{title}: {views[0].title}"},
        scene={"aspectmode": "data", "camera": _camera(up)},
        margin={"l": 0, "r": 0, "t": 60, "b": 0},
        height=720,
        legend={"x": 1.0, "xanchor": "right", "y": 1.0},
        updatemenus=[{"buttons": buttons, "x": 0.0, "y": 1.0, "xanchor": "left"}]
        if len(views) > 1
        else [],
    )
    return fig


def _camera(up: str) -> dict:
    """A plotly scene camera looking from the front-right, ``up`` ("x", "y", "z") upwards."""
    if up not in ("x", "y", "z"):
        raise DataError(f"viewer: up must be 'x', 'y' or 'z', got {up!r}")
    axes = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1)}
    eye = {"x": (0.8, 1.25, 1.25), "y": (1.25, 0.8, 1.25), "z": (1.25, 1.25, 0.8)}[up]
    return {
        "up": dict(zip("xyz", axes[up], strict=True)),
        "eye": dict(zip("xyz", eye, strict=True)),
    }


def keypoint_page(
    views: Sequence[ShapeView], title: str = "keypoints", compact: bool = False, up: str = "z"
) -> str:
    """A complete, self-contained HTML page (plotly.js inline) of :func:`keypoint_figure`.

    ``compact``: instead of plotly's full bundle (4.8 MB), inline its gl3d partial bundle
    (:mod:`bt3d.vendor`) and the figure, each gzip-compressed and base64-encoded, inflated by
    the browser (``DecompressionStream``; Chromium 80, Firefox 113, Safari 16.4): about
    0.75 MB plus ~28 kB per shape of 2048 points, small enough to be embedded in Snakemake's
    report as a ``data:`` URL (Chromium shows those up to 2 MB).
    """
    fig = keypoint_figure(views, title, up)
    if compact:
        return _compact_page(fig, title)
    return fig.to_html(include_plotlyjs=True, full_html=True, div_id="bt3d-keypoints")


# Inflates the gl3d bundle and the figure (no network), then draws; an error is shown.
_INFLATE = """<script>
async function bt3dInflate(id) {
  const text = atob(document.getElementById(id).textContent.trim());
  const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}
(async () => {
  const library = document.createElement("script");
  library.textContent = await bt3dInflate("bt3d-plotly");
  document.head.appendChild(library);
  const figure = JSON.parse(await bt3dInflate("bt3d-figure"));
  await Plotly.newPlot("bt3d-keypoints", figure.data, figure.layout, {responsive: true});
})().catch((error) => {
  console.error(error);
  document.body.insertAdjacentText("beforeend", "could not draw the 3D view: " + error);
});
</script>"""


def _compact_page(fig, title: str) -> str:
    import base64
    import gzip

    from bt3d.vendor import PLOTLY_GL3D_GZ

    library = base64.b64encode(PLOTLY_GL3D_GZ.read_bytes()).decode("ascii")
    figure = gzip.compress(fig.to_json().encode("utf-8"), compresslevel=9, mtime=0)
    return (
        '<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n"
        '<div id="bt3d-keypoints" style="width:100%;height:720px"></div>\n'
        f'<script id="bt3d-plotly" type="application/octet-stream">{library}</script>\n'
        '<script id="bt3d-figure" type="application/octet-stream">'
        f"{base64.b64encode(figure).decode('ascii')}</script>\n{_INFLATE}\n</body>\n</html>\n"
    )


__all__ = [
    "KeypointLayer",
    "ShapeView",
    "keypoint_figure",
    "keypoint_page",
    "name_colours",
    "shape_traces",
]
