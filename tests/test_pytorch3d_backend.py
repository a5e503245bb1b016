"""The ``pytorch3d`` render backend against ``embree``: face ids, depth, point visibility and
back-projected features, on the embedded shapes and the shared real chair.

Runs where PyTorch3D imports (``make check-pytorch3d`` builds such a side venv); skipped
elsewhere. Prints the agreement figures (run pytest with ``-s`` to see them).
"""

from __future__ import annotations

import numpy as np
import pytest

from bt3d.cameras import fit_cameras, view_sphere
from bt3d.io import read_pcd, read_ply
from bt3d.render import render
from bt3d.synthetic import make_shape
from bt3d.visibility import point_visibility

pytestmark = pytest.mark.pytorch3d
pytest.importorskip("pytorch3d")

VIEWS = {"n_azimuth": 6, "n_polar": 3}  # 20 views
IMAGE_SIZE = 112
SHAPES = ["airplane", "chair", "table", "real chair"]


@pytest.fixture(scope="module", params=SHAPES)
def shape(request, shared_data_or_none):
    """``(name, mesh, points)``."""
    if request.param != "real chair":
        made = make_shape(request.param, 0)
        return request.param, made.mesh, made.points
    if shared_data_or_none is None:
        pytest.skip("../shared/data not present")
    sample = shared_data_or_none / "keypointnet-sample"
    ply = sorted((sample / "ShapeNetCore.v2.ply").glob("*/*.ply"))[0]
    points, _ = read_pcd(sample / "pcds" / ply.parent.name / f"{ply.stem}.pcd")
    return "real chair", read_ply(ply), points


@pytest.fixture(scope="module")
def shared_data_or_none():
    from conftest import SHARED

    return SHARED if (SHARED / "keypointnet-sample").is_dir() else None


def test_face_ids_depth_and_visibility_agree(shape) -> None:
    name, mesh, points = shape
    cams = fit_cameras(points, view_sphere(**VIEWS), image_size=IMAGE_SIZE)
    ours, ref = render(mesh, cams, backend="embree"), render(mesh, cams, backend="pytorch3d")
    union = (ours.face_ids >= 0) | (ref.face_ids >= 0)
    same_face = (ours.face_ids == ref.face_ids) & (ours.face_ids >= 0)
    face_agree = (ours.face_ids[union] == ref.face_ids[union]).mean()
    coverage_agree = ((ours.face_ids >= 0) == (ref.face_ids >= 0))[union].mean()
    depth_rel = np.abs(ours.depth[same_face] - ref.depth[same_face]) / ref.depth[same_face]
    vis_ours = point_visibility(mesh, points, ours.face_ids)
    vis_ref = point_visibility(mesh, points, ref.face_ids)
    vis_agree = (vis_ours == vis_ref).mean()
    print(f"\n{name}: {len(mesh.faces)} faces, {len(cams)} views of {IMAGE_SIZE} px: "
          f"face id agrees on {face_agree:.4f} of foreground pixels (coverage "
          f"{coverage_agree:.4f}), depth rel. diff max {depth_rel.max():.1e}, "
          f"(view, point) visibility agrees {vis_agree:.4f}")  # fmt: skip
    assert coverage_agree > 0.99 and face_agree > 0.98
    assert depth_rel.max() < 1e-3
    assert vis_agree > 0.99


def test_backprojected_features_agree(shape) -> None:
    from bt3d.backbones import get_backbone
    from bt3d.pipeline import extract_shape_features, shape_geodesic
    from bt3d.settings import FeatureSettings, GeodesicSettings, load_config

    name, mesh, points = shape
    backbone = get_backbone("dinov2_vits14_offline", layer="block9")
    config = load_config(
        overrides={
            "render": {**VIEWS, "image_size": IMAGE_SIZE},
            "backbone": {"layer": "block9", "precision": "float32"},
        }
    )
    geodesic = shape_geodesic(mesh, points, GeodesicSettings.from_config(config), name)
    results = {}
    for backend in ("embree", "pytorch3d"):
        config["render"]["backend"] = backend
        settings = FeatureSettings.from_config(config)
        results[backend] = extract_shape_features(mesh, points, backbone, settings, geodesic)
    a, b = results["embree"], results["pytorch3d"]
    cosine = np.sum(a.features * b.features, axis=1) / (
        np.linalg.norm(a.features, axis=1) * np.linalg.norm(b.features, axis=1) + 1e-12
    )
    seen = (a.counts > 0) | (b.counts > 0)
    same_views = (a.counts == b.counts)[seen].mean()
    agree = (cosine[seen] > 0.99).mean()
    print(f"\n{name}: smoothed features (C={a.features.shape[1]}): per-point cosine mean "
          f"{cosine.mean():.4f}, 5th percentile {np.percentile(cosine, 5):.4f}, min "
          f"{cosine.min():.4f}; of {seen.sum()} visible points {agree:.4f} agree (cosine > 0.99)"
          f" and {same_views:.4f} are seen by as many views")  # fmt: skip
    assert np.percentile(cosine, 5) > 0.98 and agree > 0.95
