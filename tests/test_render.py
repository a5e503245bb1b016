"""Rendering: the embree rasteriser against brute-force ray-triangle tests, analytic depths,
PyTorch3D's shading formula and back-face culling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from bt3d.cameras import Cameras, fit_cameras, look_at, view_sphere
from bt3d.errors import ConfigError
from bt3d.io import read_pcd, read_ply
from bt3d.render import AMBIENT, DIFFUSE, GREY, SPECULAR, available_backends, render
from bt3d.structures import Mesh
from bt3d.visibility import point_visibility

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _cameras(eyes, image_size: int, fov: float = 60.0) -> Cameras:
    R, T = look_at(np.asarray(eyes, dtype=float))
    return Cameras(R, T, fov_degrees=fov, image_size=image_size)


def _moller_trumbore(origins, directions, triangles, cull: bool):
    """Brute force: (M, F) ray parameter of every ray-triangle hit (inf for none)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    e1, e2 = b - a, c - a
    p = np.cross(directions[:, None, :], e2[None])  # (M, F, 3)
    det = np.einsum("mfi,fi->mf", p, e1)
    # det = -d . (e1 x e2): front faces (counter-clockwise seen from the origin) have det > 0
    ok = det > 1e-12 if cull else np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origins[:, None, :] - a[None]
    u = np.einsum("mfi,mfi->mf", s, p) * inv
    q = np.cross(s, e1[None])
    v = np.einsum("mi,mfi->mf", directions, q) * inv
    t = np.einsum("fi,mfi->mf", e2, q) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    return np.where(hit, t, np.inf)


def _scene_mesh() -> Mesh:
    """A box, a sphere poking out of it and a tilted triangle: occlusion and silhouettes."""
    box = trimesh.creation.box(extents=(0.5, 0.4, 0.3))
    ball = trimesh.creation.icosphere(subdivisions=1, radius=0.18)
    ball.apply_translation((0.2, 0.15, 0.1))
    tri = trimesh.Trimesh([[-0.4, -0.3, 0.3], [-0.1, -0.35, 0.25], [-0.3, 0.1, 0.4]], [[0, 1, 2]])
    scene = trimesh.util.concatenate([box, ball, tri])
    return Mesh(scene.vertices, scene.faces)


@pytest.mark.parametrize("cull", [True, False])
def test_embree_matches_brute_force(cull):
    mesh = _scene_mesh()
    cams = _cameras(view_sphere(n_azimuth=3, n_polar=2), image_size=20)
    rast = render(mesh, cams, cull_backfaces=cull)
    origins, directions = cams.rays()
    t = _moller_trumbore(
        origins.reshape(-1, 3), directions.reshape(-1, 3), mesh.triangles, cull=cull
    )
    t_min = t.min(axis=1)
    ids = rast.face_ids.reshape(-1)
    assert ((ids >= 0) == np.isfinite(t_min)).all()
    fg = ids >= 0
    assert fg.mean() > 0.1
    np.testing.assert_allclose(rast.depth.reshape(-1)[fg], t_min[fg], rtol=1e-5)
    # the face embree reports is hit at the nearest depth (ties on shared edges may differ)
    t_of_id = t[np.flatnonzero(fg), ids[fg]]
    np.testing.assert_allclose(t_of_id, t_min[fg], rtol=1e-5)
    assert (ids[fg] == t.argmin(axis=1)[fg]).mean() > 0.98
    assert rast.layers is None


@pytest.mark.parametrize("cull", [True, False])
def test_face_layers_match_brute_force(cull):
    mesh = _scene_mesh()
    cams = _cameras(view_sphere(n_azimuth=2, n_polar=2), image_size=16)
    rast = render(mesh, cams, cull_backfaces=cull, faces_per_pixel=3)
    assert rast.layers.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(rast.layers[..., 0], rast.face_ids)
    origins, directions = cams.rays()
    t = _moller_trumbore(
        origins.reshape(-1, 3), directions.reshape(-1, 3), mesh.triangles, cull=cull
    )
    nearest3 = np.sort(t, axis=1)[:, :3]
    layers = rast.layers.reshape(-1, 3)
    np.testing.assert_array_equal(layers >= 0, np.isfinite(nearest3))
    rows, slots = np.nonzero(layers >= 0)
    np.testing.assert_allclose(t[rows, layers[rows, slots]], nearest3[rows, slots], rtol=1e-5)
    assert (layers[:, 1] >= 0).mean() > 0.02  # some rays do pass through several faces


def test_cube_depth_and_silhouette_are_analytic():
    box = trimesh.creation.box(extents=(0.5, 0.5, 0.5))
    mesh = Mesh(box.vertices, box.faces)
    cams = _cameras([[0.0, 0.0, 2.0]], image_size=64, fov=60.0)
    rast = render(mesh, cams)
    # the front face z = 0.25 is perpendicular to the view axis: view depth 1.75 everywhere
    fg = rast.face_ids[0] >= 0
    np.testing.assert_allclose(rast.depth[0][fg], 1.75, rtol=1e-6)
    # pixel centres whose ray meets the plane z = 0.25 inside |x|, |y| < 0.25
    ndc = (1 - (2 * np.arange(64) + 1) / 64) * np.tan(np.radians(30))
    half = np.abs(ndc) * 1.75 < 0.25
    np.testing.assert_array_equal(fg, half[:, None] & half[None, :])
    assert set(np.unique(rast.face_ids[0][fg])) <= set(
        np.flatnonzero(np.isclose(mesh.triangles[:, :, 2], 0.25).all(axis=1))
    )


def test_background_is_minus_one_inf_and_white():
    mesh = _scene_mesh()
    cams = _cameras(view_sphere(n_azimuth=2, n_polar=1), image_size=16)
    rast = render(mesh, cams)
    bg = rast.face_ids < 0
    assert bg.any() and (~bg).any()
    assert np.isinf(rast.depth[bg]).all() and np.isfinite(rast.depth[~bg]).all()
    assert (rast.images.transpose(1, 0, 2, 3)[:, bg] == 1.0).all()
    assert rast.face_ids.dtype == np.int64 and rast.depth.dtype == np.float32
    assert rast.images.dtype == np.float32 and rast.images.shape == (4, 3, 16, 16)
    assert rast.images.min() >= 0.0 and rast.images.max() <= 1.0


def _facing_triangle(flip: bool = False) -> Mesh:
    """A triangle in the plane z = 0 with its centroid at the origin, normal +z (or -z)."""
    faces = [[0, 2, 1]] if flip else [[0, 1, 2]]
    return Mesh(np.array([[-0.3, -0.2, 0.0], [0.3, -0.2, 0.0], [0.0, 0.4, 0.0]]), faces)


def test_shading_follows_pytorch3d_formula():
    cams = _cameras([[0.0, 0.0, 1.5]], image_size=32)
    # head-on, light at the camera: cos = 1 and the reflection points at the eye
    front = render(_facing_triangle(), cams)
    fg = front.face_ids[0] >= 0
    expected = GREY * (AMBIENT + DIFFUSE) + SPECULAR
    np.testing.assert_allclose(front.images[0][:, fg], expected, rtol=1e-6)
    # seen from behind without culling: no diffuse, no specular
    back = render(_facing_triangle(flip=True), cams, cull_backfaces=False)
    fg = back.face_ids[0] >= 0
    assert fg.sum() > 20
    np.testing.assert_allclose(back.images[0][:, fg], GREY * AMBIENT, rtol=1e-6)
    # a light off to the side: cos = 1/sqrt(2), reflection away from the eye
    side = render(_facing_triangle(), cams, light_locations=np.array([[1.0, 0.0, 1.0]]))
    fg = side.face_ids[0] >= 0
    cos = 1 / np.sqrt(2)
    view = np.array([0.0, 0.0, 1.0])
    reflect = 2 * cos * np.array([0, 0, 1.0]) - np.array([1.0, 0, 1.0]) / np.sqrt(2)
    spec = SPECULAR * max(view @ reflect, 0) ** 64
    np.testing.assert_allclose(side.images[0][:, fg], GREY * (AMBIENT + DIFFUSE * cos) + spec)


def test_textured_uses_vertex_colours():
    tri = _facing_triangle()
    colours = np.array([[255, 0, 0], [255, 0, 0], [255, 0, 0]], dtype=np.uint8)
    mesh = Mesh(tri.vertices, tri.faces, vertex_colors=colours)
    cams = _cameras([[0.0, 0.0, 1.5]], image_size=32)
    rast = render(mesh, cams, textured=True)
    fg = rast.face_ids[0] >= 0
    np.testing.assert_allclose(rast.images[0][0, fg], 1.0 * (AMBIENT + DIFFUSE) + SPECULAR)
    np.testing.assert_allclose(rast.images[0][1:, fg], SPECULAR, rtol=1e-6)
    # interpolation: a colour ramp over the corners gives a ramp across the image
    ramp = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 0]], dtype=np.uint8)
    red = render(Mesh(tri.vertices, tri.faces, vertex_colors=ramp), cams, textured=True)
    row = red.images[0, 0, 16][red.face_ids[0, 16] >= 0]
    assert np.all(np.diff(row) > 0)  # x grows to the right, towards the red corner


def test_back_face_culling_on_an_open_mesh():
    cams = _cameras([[0.0, 0.0, -1.5]], image_size=24)  # behind the +z-facing triangle
    culled = render(_facing_triangle(), cams)
    assert (culled.face_ids == -1).all()
    assert (culled.images == 1.0).all()
    shown = render(_facing_triangle(), cams, cull_backfaces=False)
    assert (shown.face_ids == 0).sum() > 20


def test_culling_passes_through_a_flipped_face_to_the_next_front_face():
    # a back-facing triangle in front of a front-facing one
    near = _facing_triangle(flip=True).vertices + [0.0, 0.0, 0.2]
    far = _facing_triangle().vertices * 2
    mesh = Mesh(np.concatenate([near, far]), [[0, 2, 1], [3, 4, 5]])
    cams = _cameras([[0.0, 0.0, 1.5]], image_size=24)
    culled = render(mesh, cams)
    fg = culled.face_ids[0] >= 0
    assert (culled.face_ids[0][fg] == 1).all()
    np.testing.assert_allclose(culled.depth[0][fg], 1.5, rtol=1e-5)
    unculled = render(mesh, cams, cull_backfaces=False)
    assert (unculled.face_ids[0] == 0).sum() > 10


def test_two_sided_copies_show_the_copy_facing_the_camera():
    tri = _facing_triangle()
    mesh = Mesh(tri.vertices, [[0, 2, 1], [0, 1, 2]])  # back copy first, then front copy
    front = render(mesh, _cameras([[0.0, 0.0, 1.5]], image_size=24))
    behind = render(mesh, _cameras([[0.0, 0.0, -1.5]], image_size=24))
    assert set(np.unique(front.face_ids)) == {-1, 1}
    assert set(np.unique(behind.face_ids)) == {-1, 0}


def test_backend_registry():
    assert available_backends()[0] == "embree"
    with pytest.raises(ConfigError, match="unknown render backend"):
        render(_facing_triangle(), _cameras([[0.0, 0.0, 1.5]], 8), backend="opengl")
    with pytest.raises(ConfigError, match="light_locations"):
        render(_facing_triangle(), _cameras([[0.0, 0.0, 1.5]], 8), light_locations=np.zeros(3))


@pytest.mark.pytorch3d
def test_pytorch3d_agrees_with_embree():
    pytest.importorskip("pytorch3d")
    mesh = _scene_mesh()
    cams = _cameras(view_sphere(n_azimuth=4, n_polar=3), image_size=64)
    ours = render(mesh, cams, backend="embree")
    ref = render(mesh, cams, backend="pytorch3d")
    fg = (ours.face_ids >= 0) | (ref.face_ids >= 0)
    assert (ours.face_ids[fg] == ref.face_ids[fg]).mean() > 0.99
    both = (ours.face_ids >= 0) & (ours.face_ids == ref.face_ids)
    np.testing.assert_allclose(ours.depth[both], ref.depth[both], rtol=1e-3)
    np.testing.assert_allclose(
        ours.images.transpose(1, 0, 2, 3)[:, both],
        ref.images.transpose(1, 0, 2, 3)[:, both],
        atol=1e-3,
    )


def test_pytorch3d_backend_explains_how_to_install_it():
    if "pytorch3d" in available_backends():
        pytest.skip("pytorch3d is installed here")
    with pytest.raises(ConfigError, match="pytorch3d.*INSTALL|INSTALL"):
        render(_facing_triangle(), _cameras([[0.0, 0.0, 1.5]], 8), backend="pytorch3d")


def test_real_chair_two_sided_copies_render_cleanly_with_culling():
    """The KeypointNet sample chair models every surface as two coincident faces of opposite
    winding: with culling each pixel shows the copy facing the camera (full coverage, lit);
    without culling the copies z-fight and many pixels show the unlit back copy."""
    meshes = sorted((SHARED / "keypointnet-sample" / "ShapeNetCore.v2.ply").glob("*/*.ply"))
    if not meshes:
        pytest.skip("../shared/data not present")
    mesh = read_ply(meshes[0])
    points, _ = read_pcd(
        SHARED / "keypointnet-sample" / "pcds" / meshes[0].parent.name / f"{meshes[0].stem}.pcd"
    )
    cams = fit_cameras(points, view_sphere(n_azimuth=4, n_polar=2), image_size=96)
    culled = render(mesh, cams)
    both = render(mesh, cams, cull_backfaces=False)
    np.testing.assert_array_equal(culled.face_ids >= 0, both.face_ids >= 0)
    fg = culled.face_ids >= 0
    normals = np.cross(*(mesh.triangles[:, [1, 2]] - mesh.triangles[:, [0]]).transpose(1, 0, 2))
    view, rows, cols = np.nonzero(fg)
    faces = culled.face_ids[fg]
    towards_camera = np.einsum(
        "ij,ij->i", normals[faces], cams.centres()[view] - mesh.triangles[faces, 0]
    )
    assert (towards_camera >= 0).all()
    assert (both.face_ids[fg] != culled.face_ids[fg]).mean() > 0.05
    visible = point_visibility(mesh, points, culled.face_ids)
    assert visible.any(axis=0).mean() > 0.95
