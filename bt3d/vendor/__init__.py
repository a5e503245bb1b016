"""Third-party files shipped with bt3d.

``plotly-gl3d.min.js.gz``: plotly.js's ``gl3d`` partial bundle (3D traces only; the same
plotly.js version, 4.1.1, that the pinned plotly Python package inlines in full), from the
npm package ``plotly.js-gl3d-dist-min@4.1.1`` (tarball sha256
a2e13872f0102c1cf959955d5d62a534a2321e812ae34f120924b488a2cde057; ``plotly-gl3d.min.js``
sha256 :data:`PLOTLY_GL3D_SHA256`), compressed with ``gzip -9 -n``; MIT licence in
``plotly-gl3d.LICENSE``. :func:`bt3d.viewer.keypoint_page` inlines it in pages that must stay
small (Chromium refuses to show a ``data:`` URL over 2 MB, which is how Snakemake's
self-contained report embeds an HTML result).
"""

from pathlib import Path

PLOTLY_GL3D_GZ = Path(__file__).with_name("plotly-gl3d.min.js.gz")
PLOTLY_GL3D_VERSION = "4.1.1"
PLOTLY_GL3D_SHA256 = "aab04dcd9c103a92b18723f8c837712fe820f325d0bcd2421e415e8124a75b9f"
