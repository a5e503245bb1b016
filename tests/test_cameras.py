"""Cameras in PyTorch3D's conventions, checked against hand-derived cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bt3d.cameras import Cameras, fit_cameras, inside_image, look_at, view_sphere
from bt3d.errors import ConfigError, DataError


def _undo_rotation_x(eyes: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    rotation = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return eyes @ rotation  # eyes = plain @ rotation.T


def test_view_sphere_layout():
    eyes = view_sphere()
    assert eyes.shape == (62, 3)
    np.testing.assert_allclose(np.linalg.norm(eyes, axis=1), 1.1)
    plain = _undo_rotation_x(eyes, 0.001)
    # first camera: azimuth 0, polar pi/6
    np.testing.assert_allclose(
        plain[0], 1.1 * np.array([0.5, math.cos(math.pi / 6), 0.0]), atol=1e-12
    )
    polar = np.arccos(np.clip(plain[:60, 1] / 1.1, -1, 1)).reshape(12, 5)
    np.testing.assert_allclose(polar, np.tile(np.pi * np.arange(1, 6) / 6, (12, 1)), atol=1e-9)
    azimuth = np.arctan2(plain[:60, 2], plain[:60, 0]).reshape(12, 5)
    expected = np.repeat(2 * np.pi * np.arange(12) / 12, 5).reshape(12, 5)
    np.testing.assert_allclose(np.exp(1j * azimuth), np.exp(1j * expected), atol=1e-9)
    np.testing.assert_allclose(plain[60:], [[0, 1.1, 0], [0, -1.1, 0]], atol=1e-12)
    # the rotation really was applied: the top pole leans towards +z
    assert eyes[60, 2] == pytest.approx(1.1 * math.sin(0.001))


def test_look_at_hand_derived():
    R, T = look_at(np.array([[0.0, 0.0, 2.0], [2.0, 0.0, 0.0]]))
    # camera on +z looking at the origin: view x = world -x, y = y, z = -z
    np.testing.assert_allclose(R[0], np.diag([-1.0, 1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(T[0], [0, 0, 2], atol=1e-12)
    # camera on +x: z = (-1,0,0), x = up x z = (0,0,1), y = z x x = (0,1,0) as columns
    np.testing.assert_allclose(R[1], np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]]), atol=1e-12)
    np.testing.assert_allclose(T[1], [0, 0, 2], atol=1e-12)


def test_look_at_properties_on_the_view_sphere():
    eyes = view_sphere()
    R, T = look_at(eyes)
    np.testing.assert_allclose(
        R.transpose(0, 2, 1) @ R, np.broadcast_to(np.eye(3), R.shape), atol=1e-9
    )
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    cams = Cameras(R, T)
    np.testing.assert_allclose(cams.centres(), eyes, atol=1e-12)
    # the target projects to the image centre at depth |eye|
    pixels, depth = cams.project(np.zeros((1, 3)))
    np.testing.assert_allclose(pixels[:, 0], 112.0, atol=1e-9)
    np.testing.assert_allclose(depth[:, 0], 1.1, atol=1e-12)


def test_look_at_rejects_eye_along_up():
    with pytest.raises(ConfigError, match="up vector"):
        look_at(np.array([[0.0, 3.0, 0.0]]))
    with pytest.raises(ConfigError, match="camera 1"):
        look_at(view_sphere(rotation_x=0.0)[[0, 60]])


def test_project_hand_derived():
    R, T = look_at(np.array([[0.0, 0.0, 2.0]]))
    cams = Cameras(R, T, fov_degrees=90.0, image_size=100)  # tan(45) = 1
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.5, -0.5, 1.0]], dtype=float)
    pixels, depth = cams.project(pts)
    # world +x appears on the right (column > 50), world +y at the top (row < 50)
    np.testing.assert_allclose(pixels[0], [[50, 50], [75, 50], [50, 25], [75, 75]], atol=1e-12)
    np.testing.assert_allclose(depth[0], [2, 2, 2, 1])


def test_rays_hit_their_pixel_centres():
    eyes = view_sphere(n_azimuth=3, n_polar=2)
    R, T = look_at(eyes)
    cams = Cameras(R, T, image_size=9)
    origins, directions = cams.rays()
    assert origins.shape == directions.shape == (len(eyes), 9, 9, 3)
    depth = np.random.default_rng(0).uniform(0.2, 3.0, size=(len(eyes), 9, 9))
    hits = origins + depth[..., None] * directions
    for v in range(len(eyes)):
        pixels, d = cams.subset([v]).project(hits[v].reshape(-1, 3))
        rows, cols = np.meshgrid(np.arange(9), np.arange(9), indexing="ij")
        centres = np.stack([cols + 0.5, rows + 0.5], axis=-1).reshape(-1, 2)
        np.testing.assert_allclose(pixels[0], centres, atol=1e-9)
        np.testing.assert_allclose(d[0], depth[v].ravel(), atol=1e-9)
    _, unit = cams.rays(normalized=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), 1.0)


def test_fit_cameras_moves_back_minimally():
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.6, 0.6, size=(500, 3))  # too wide for a camera at 1.1
    eyes = view_sphere()
    cams = fit_cameras(points, eyes, step=0.05)
    pixels, depth = cams.project(points)
    assert inside_image(pixels, depth, 224, 0.01).all()
    moved = np.linalg.norm(cams.centres(), axis=1) - 1.1
    steps = moved / 0.05
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    assert (steps > 0).all()
    # one step less and some point leaves the image: k is the smallest
    closer = Cameras(cams.R, cams.T - 0.05 * np.array([0.0, 0.0, 1.0]))
    assert (~inside_image(*closer.project(points), 224, 0.01).all(axis=1)).all()
    # directions are unchanged
    np.testing.assert_allclose(cams.R, look_at(eyes)[0])


def test_fit_cameras_keeps_cameras_that_already_see_everything():
    points = np.random.default_rng(2).uniform(-0.2, 0.2, size=(100, 3))
    eyes = view_sphere()
    cams = fit_cameras(points, eyes)
    np.testing.assert_allclose(cams.centres(), eyes, atol=1e-12)


def test_fit_cameras_gives_up_after_max_steps():
    points = np.array([[0.0, 0.0, 0.0], [30.0, 0.0, 0.0]])
    with pytest.raises(DataError, match="max_steps=100"):
        fit_cameras(points, view_sphere())
