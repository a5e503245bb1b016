"""Nearest faces, edge adjacency and point visibility against slow obvious versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from bt3d.cameras import Cameras, fit_cameras, look_at, view_sphere
from bt3d.io import read_pcd, read_ply
from bt3d.render import render
from bt3d.structures import Mesh
from bt3d.visibility import (
    edge_adjacency,
    nearest_faces,
    point_triangle_sqdist,
    point_visibility,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _mesh() -> Mesh:
    """An icosphere plus one large triangle (exercises the 'big face' candidate path)."""
    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    big = trimesh.Trimesh([[-1.0, -0.6, -1.0], [1.0, -0.6, -1.0], [0.0, -0.6, 1.0]], [[0, 1, 2]])
    scene = trimesh.util.concatenate([ball, big])
    return Mesh(scene.vertices, scene.faces)


def _brute_sqdist(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    n, f = len(points), len(mesh.faces)
    return point_triangle_sqdist(
        np.repeat(points, f, axis=0), np.tile(mesh.triangles, (n, 1, 1))
    ).reshape(n, f)


def test_point_triangle_distance_regions():
    tri = np.array([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]] * 4)
    pts = np.array([[0.2, 0.2, 0.5], [-1, -1, 0], [0.5, -2, 1], [1, 1, 0]])
    expected = [0.25, 2.0, 4.0 + 1.0, 0.5]  # face, vertex, edge (with height), hypotenuse
    np.testing.assert_allclose(point_triangle_sqdist(pts, tri), expected)
    # a degenerate (collinear) triangle measures to its segment
    flat = np.array([[[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]])
    np.testing.assert_allclose(point_triangle_sqdist(np.array([[3.0, 1, 0]]), flat), [2.0])


def test_nearest_faces_are_exact():
    mesh = _mesh()
    rng = np.random.default_rng(0)
    surface = trimesh.Trimesh(mesh.vertices, mesh.faces).sample(150, seed=1)
    points = np.concatenate(
        [
            surface + rng.normal(0, 0.02, surface.shape),
            rng.uniform(-1.2, 1.2, (100, 3)),  # off the surface, some far away
            mesh.vertices[:30],  # on vertices: many faces tie
        ]
    )
    got = nearest_faces(mesh, points)
    d = _brute_sqdist(mesh, points)
    best = d.min(axis=1)
    np.testing.assert_array_equal(d[np.arange(len(points)), got], best)
    # ties go to the lowest index
    np.testing.assert_array_equal(got, np.argmax(d == best[:, None], axis=1))


def test_nearest_faces_exact_among_long_thin_faces():
    # ShapeNet-like: many small faces plus long slats, which take the bounding-box path
    rng = np.random.default_rng(7)
    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    starts = rng.uniform(-0.5, 0.5, (40, 3))
    axis = rng.normal(size=(40, 3))
    slats = np.stack([starts, starts + axis * 0.4, starts + 0.01 * rng.normal(size=(40, 3))], 1)
    vertices = np.concatenate([ball.vertices, slats.reshape(-1, 3)])
    faces = np.concatenate([ball.faces, len(ball.vertices) + np.arange(120).reshape(40, 3)])
    mesh = Mesh(vertices, faces)
    points = rng.uniform(-0.6, 0.6, (300, 3))
    got = nearest_faces(mesh, points)
    d = _brute_sqdist(mesh, points)
    np.testing.assert_array_equal(got, np.argmin(d, axis=1))


def test_nearest_faces_exact_on_the_real_chair():
    meshes = sorted((SHARED / "keypointnet-sample" / "ShapeNetCore.v2.ply").glob("*/*.ply"))
    if not meshes:
        pytest.skip("../shared/data not present")
    mesh = read_ply(meshes[0])
    pcd = SHARED / "keypointnet-sample" / "pcds" / meshes[0].parent.name / f"{meshes[0].stem}.pcd"
    points = read_pcd(pcd)[0][::16].astype(np.float64)
    got = nearest_faces(mesh, points)
    d = _brute_sqdist(mesh, points)
    best = d.min(axis=1)
    np.testing.assert_array_equal(got, np.argmax(d == best[:, None], axis=1))


def _slow_adjacency(faces: np.ndarray) -> np.ndarray:
    faces_of_edge: dict[tuple[int, int], list[int]] = {}
    for i, face in enumerate(faces.tolist()):
        for a, b in ((face[0], face[1]), (face[1], face[2]), (face[2], face[0])):
            faces_of_edge.setdefault((min(a, b), max(a, b)), []).append(i)
    adj = np.eye(len(faces), dtype=bool)
    for sharing in faces_of_edge.values():
        for i in sharing:
            for j in sharing:
                adj[i, j] = True
    return adj


def test_edge_adjacency_matches_a_loop():
    mesh = _mesh()
    adj = edge_adjacency(mesh)
    assert adj.dtype == bool and adj.shape == (len(mesh.faces),) * 2
    np.testing.assert_array_equal(adj.toarray(), _slow_adjacency(mesh.faces))
    # a closed triangle mesh: every face has itself and exactly 3 neighbours
    assert (adj.sum(axis=1)[:-1] == 4).all()


def _slow_visibility(mesh, points, face_ids):
    nearest = np.argmin(_brute_sqdist(mesh, points), axis=1)
    adj = _slow_adjacency(mesh.faces)
    vis = np.zeros((len(face_ids), len(points)), dtype=bool)
    for v in range(len(face_ids)):
        seen = set(face_ids[v][face_ids[v] >= 0].tolist())
        for i in range(len(points)):
            vis[v, i] = any(j in seen for j in np.flatnonzero(adj[nearest[i]]))
    return vis


def test_point_visibility_matches_a_loop_on_random_face_ids():
    mesh = _mesh()
    rng = np.random.default_rng(3)
    points = trimesh.Trimesh(mesh.vertices, mesh.faces).sample(80, seed=2)
    face_ids = rng.integers(-1, len(mesh.faces), size=(5, 6, 6))
    face_ids[rng.random(face_ids.shape) < 0.5] = -1
    face_ids[4] = -1  # an empty view
    vis = point_visibility(mesh, points, face_ids)
    np.testing.assert_array_equal(vis, _slow_visibility(mesh, points, face_ids))
    assert not vis[4].any()


def test_point_visibility_of_a_rendered_sphere():
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    mesh = Mesh(ball.vertices, ball.faces)
    points = ball.sample(300, seed=4)
    cams = fit_cameras(points, view_sphere(n_azimuth=4, n_polar=1), image_size=48)
    rast = render(mesh, cams)
    vis = point_visibility(mesh, points, rast.face_ids)
    np.testing.assert_array_equal(vis, _slow_visibility(mesh, points, rast.face_ids))
    # a point facing the camera is seen, a point on the far side is not
    eyes = cams.centres()
    facing = (
        points @ eyes.T / (np.linalg.norm(points, axis=1)[:, None] * np.linalg.norm(eyes, axis=1))
    )
    assert vis.T[facing > 0.8].all()
    assert not vis.T[facing < -0.5].any()


def test_point_visibility_accepts_precomputed_nearest_faces():
    mesh = _mesh()
    points = trimesh.Trimesh(mesh.vertices, mesh.faces).sample(50, seed=5)
    R, T = look_at(np.array([[0.0, 0.0, 2.5]]))
    rast = render(mesh, Cameras(R, T, image_size=24))
    np.testing.assert_array_equal(
        point_visibility(mesh, points, rast.face_ids, nearest=nearest_faces(mesh, points)),
        point_visibility(mesh, points, rast.face_ids),
    )


def test_point_visibility_counts_every_face_layer():
    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    mesh = Mesh(ball.vertices, ball.faces)
    points = ball.sample(200, seed=6)
    R, T = look_at(np.array([[0.0, 0.0, 1.5]]))
    rast = render(mesh, Cameras(R, T, image_size=32), cull_backfaces=False, faces_per_pixel=2)
    front_only = point_visibility(mesh, points, rast.face_ids)
    both = point_visibility(mesh, points, rast.layers)
    np.testing.assert_array_equal(both, _slow_visibility(mesh, points, rast.layers))
    # without culling the second layer is the far side of the sphere: it becomes "visible"
    assert (front_only <= both).all()
    assert both[0, points[:, 2] < -0.3].all() and not front_only[0, points[:, 2] < -0.3].any()
