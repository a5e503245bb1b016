"""Cameras on a view sphere, look-at, projection and pixel rays, in PyTorch3D's conventions.

PyTorch3D is not a dependency; this module reproduces the parts of its camera model that the
method (ALGORITHM.md §1.2) relies on, so that features back-projected here land on the same
pixels as in the reference code (which uses ``look_at_rotation`` + ``FoVPerspectiveCameras`` +
``MeshRasterizer``). The conventions, as implemented in PyTorch3D:

* **Row vectors.** World to view is ``X_view = X_world @ R + T`` with ``R`` (3, 3) and ``T`` (3,).
  The camera centre is therefore ``C = -T @ R.T``.
* **look_at_rotation(eye, at, up)**: ``z = normalize(at - eye)``, ``x = normalize(up x z)``,
  ``y = normalize(z x x)`` (``normalize`` divides by ``max(|v|, 1e-5)``); ``R`` has ``x, y, z``
  as its *columns* (PyTorch3D stacks them as rows and transposes). ``look_at_view_transform``
  sets ``T = -C @ R``.
* **View space**: +X points left, +Y up, +Z into the screen (away from the camera). With the
  default ``up = +Y`` a camera on +Z looking at the origin sees world +X on the right of the
  image: the picture is not mirrored.
* **FoVPerspectiveCameras** (``fov=60`` degrees, ``aspect_ratio=1``): NDC
  ``x_ndc = x / (z tan(fov/2))``, ``y_ndc = y / (z tan(fov/2))``; NDC has +X left, +Y up and
  spans [-1, 1] on a square image. ``znear`` only affects the NDC *z*, which the mesh rasterizer
  replaces by the view-space depth ``z`` (its ``zbuf``), so here ``depth = z_view``.
* **Screen / pixels** (``transform_points_screen``, rasterizer): an (H, W) image, pixel (0, 0)
  at the top left; ``col = (1 - x_ndc) W / 2``, ``row = (1 - y_ndc) H / 2``. Pixel ``(r, c)``
  covers ``[c, c+1) x [r, r+1)`` in these units, so its centre is at ``(c + 0.5, r + 0.5)``, the
  point the rasterizer samples (``xf = 1 - (2c + 1) / W``).

Only square images are supported (``image_size`` is one integer), as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bt3d.errors import ConfigError, DataError

_NORMALIZE_EPS = 1e-5  # eps of the F.normalize calls in PyTorch3D's look_at_rotation


def _normalize(v: np.ndarray, eps: float = _NORMALIZE_EPS) -> np.ndarray:
    """Rows of ``v`` (..., 3) divided by ``max(|v|, eps)``, as ``torch.nn.functional.normalize``."""
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def _rotation_x(angle: float) -> np.ndarray:
    """(3, 3) right-handed rotation by ``angle`` radians about +X (column-vector form)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def view_sphere(
    distance: float = 1.1, n_azimuth: int = 12, n_polar: int = 5, rotation_x: float = 0.001
) -> np.ndarray:
    """Camera positions on a sphere around the origin (ALGORITHM §1.2), +Y up.

    Azimuths ``phi = 2 pi k / n_azimuth`` (k = 0..n_azimuth-1) times polar angles
    ``theta = pi j / (n_polar + 1)`` (j = 1..n_polar, i.e. pi/6 .. 5pi/6 for 5), azimuth-major,
    eye ``= distance (sin theta cos phi, cos theta, sin theta sin phi)``; then the two poles
    ``(0, +distance, 0)`` and ``(0, -distance, 0)``. Every eye is finally rotated by
    ``rotation_x`` radians about +X, so that no eye is parallel to the up vector.

    Returns:
        eyes: (n_azimuth * n_polar + 2, 3) float64, (62, 3) with the defaults.
    """
    if distance <= 0 or n_azimuth < 1 or n_polar < 1:
        raise ConfigError(
            f"view sphere needs distance > 0, n_azimuth >= 1 and n_polar >= 1, got "
            f"distance={distance}, n_azimuth={n_azimuth}, n_polar={n_polar}"
        )
    phi = 2.0 * np.pi * np.arange(n_azimuth) / n_azimuth
    theta = np.pi * np.arange(1, n_polar + 1) / (n_polar + 1)
    p, t = np.meshgrid(phi, theta, indexing="ij")  # azimuth-major order
    ring = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], axis=-1)
    poles = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    eyes = distance * np.concatenate([ring.reshape(-1, 3), poles])
    return eyes @ _rotation_x(rotation_x).T


def look_at(
    eyes: np.ndarray,
    at: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0),
    up: np.ndarray | tuple[float, float, float] = (0.0, 1.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """World-to-view transforms of cameras at ``eyes`` looking at ``at`` (PyTorch3D's
    ``look_at_view_transform``).

    Args:
        eyes: (V, 3) camera centres.
        at: (3,) or (V, 3) points looked at.
        up: (3,) or (V, 3) up directions.

    Returns:
        R: (V, 3, 3) with columns the view axes x, y, z in world coordinates.
        T: (V, 3) such that ``X_view = X_world @ R[v] + T[v]``.

    Raises:
        ConfigError: when an eye sits on ``at`` or looks along ``up`` (no unique rotation;
            PyTorch3D silently returns a degenerate matrix there).
    """
    eyes = np.atleast_2d(np.asarray(eyes, dtype=np.float64))
    at_ = np.broadcast_to(np.asarray(at, dtype=np.float64), eyes.shape)
    up_ = np.broadcast_to(np.asarray(up, dtype=np.float64), eyes.shape)
    forward = at_ - eyes
    z = _normalize(forward)
    x_raw = np.cross(up_, z)
    bad = (np.linalg.norm(forward, axis=1) < _NORMALIZE_EPS) | np.all(
        np.abs(_normalize(x_raw)) <= 5e-3, axis=1
    )
    if bad.any():
        v = int(np.flatnonzero(bad)[0])
        raise ConfigError(
            f"camera {v} at {eyes[v].tolist()} looks along the up vector {up_[v].tolist()} (or "
            "sits on its target): the look-at rotation is undefined; rotate the view sphere "
            "(rotation_x) or change up"
        )
    x = _normalize(x_raw)
    y = _normalize(np.cross(z, x))
    R = np.stack([x, y, z], axis=2)  # columns
    T = -np.einsum("vi,vij->vj", eyes, R)
    return R, T


@dataclass(frozen=True)
class Cameras:
    """A batch of V square perspective cameras (PyTorch3D ``FoVPerspectiveCameras``).

    Attributes:
        R: (V, 3, 3) world-to-view rotations, ``X_view = X_world @ R + T``.
        T: (V, 3) translations.
        fov_degrees: full vertical (= horizontal) field of view.
        image_size: H = W in pixels.
        znear: hits and points closer than this view depth are ignored by the renderer.
    """

    R: np.ndarray
    T: np.ndarray
    fov_degrees: float = 60.0
    image_size: int = 224
    znear: float = 0.01

    def __post_init__(self) -> None:
        R = np.asarray(self.R, dtype=np.float64)
        T = np.asarray(self.T, dtype=np.float64)
        if R.ndim != 3 or R.shape[1:] != (3, 3) or T.shape != (len(R), 3):
            raise ConfigError(f"cameras need R (V, 3, 3) and T (V, 3), got {R.shape}, {T.shape}")
        if not 0.0 < self.fov_degrees < 180.0:
            raise ConfigError(f"fov_degrees must lie in (0, 180), got {self.fov_degrees}")
        if int(self.image_size) != self.image_size or self.image_size < 1:
            raise ConfigError(f"image_size must be a positive integer, got {self.image_size}")
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "T", T)
        object.__setattr__(self, "image_size", int(self.image_size))

    def __len__(self) -> int:
        return len(self.R)

    @property
    def tan_half_fov(self) -> float:
        return math.tan(math.radians(self.fov_degrees) / 2.0)

    def centres(self) -> np.ndarray:
        """(V, 3) camera centres in world coordinates, ``C = -T @ R.T``."""
        return -np.einsum("vij,vj->vi", self.R, self.T)

    def to_view(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (V, N, 3) view-space points."""
        points = np.asarray(points, dtype=np.float64)
        return np.einsum("ni,vij->vnj", points, self.R) + self.T[:, None, :]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points into every view.

        Args:
            points: (N, 3) world coordinates.

        Returns:
            pixels: (V, N, 2) float64 ``(x = column, y = row)`` in pixel units, pixel centres at
                ``+0.5``; a point lies in the image when both are in ``[0, image_size]``.
            depth: (V, N) float64 view-space depth (the rasterizer's ``zbuf`` value).
        """
        view = self.to_view(points)
        depth = view[..., 2]
        scale = self.image_size / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            ndc = view[..., :2] / (depth[..., None] * self.tan_half_fov)
        return (1.0 - ndc) * scale, depth

    def pixel_ndc(self) -> np.ndarray:
        """(S,) NDC coordinate of pixel centres along an axis: ``1 - (2 i + 1) / S``."""
        s = self.image_size
        return 1.0 - (2.0 * np.arange(s) + 1.0) / s

    def view_directions(self) -> np.ndarray:
        """(S * S, 3) view-space directions through the pixel centres, row-major, with z = 1;
        world directions of view v are ``view_directions() @ R[v].T``."""
        ndc = self.pixel_ndc() * self.tan_half_fov
        s = self.image_size
        d_view = np.ones((s, s, 3))
        d_view[..., 0] = ndc[None, :]  # column -> view x
        d_view[..., 1] = ndc[:, None]  # row -> view y
        return d_view.reshape(s * s, 3)

    def rays(self, normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Rays through the pixel centres.

        Args:
            normalized: return unit directions. By default a direction has view-space z = 1, so
                that the ray parameter of a hit equals its depth as returned by :meth:`project`.

        Returns:
            origins: (V, H, W, 3) camera centres.
            directions: (V, H, W, 3) world-space directions; ``origin + depth * direction``
                projects to the centre of its pixel.
        """
        s = self.image_size
        directions = np.matmul(self.view_directions()[None], self.R.transpose(0, 2, 1))
        directions = directions.reshape(len(self), s, s, 3)
        if normalized:
            directions = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
        origins = np.broadcast_to(self.centres()[:, None, None, :], directions.shape)
        return origins, directions

    def subset(self, views: np.ndarray | slice | list[int]) -> Cameras:
        """The cameras of the given views, same intrinsics."""
        return Cameras(self.R[views], self.T[views], self.fov_degrees, self.image_size, self.znear)


def inside_image(
    pixels: np.ndarray, depth: np.ndarray, image_size: int, znear: float
) -> np.ndarray:
    """(V, N) bool: the projection lies in ``[0, image_size]^2`` and in front of ``znear``."""
    inside = np.all((pixels >= 0.0) & (pixels <= image_size), axis=-1)
    return inside & (depth > znear)


def fit_cameras(
    points: np.ndarray,
    eyes: np.ndarray,
    fov_degrees: float = 60.0,
    image_size: int = 224,
    step: float = 0.05,
    max_steps: int = 100,
    at: tuple[float, float, float] = (0.0, 0.0, 0.0),
    up: tuple[float, float, float] = (0.0, 1.0, 0.0),
    znear: float = 0.01,
) -> Cameras:
    """Look-at cameras at ``eyes``, each moved back along its viewing ray in steps of ``step``
    until every point projects inside its image (ALGORITHM §1.2).

    Each view is fitted on its own, to the smallest number of steps k in 0..max_steps (the
    reference code moves a whole batch of views together and checks only the upper image
    bound; that is coarser, never tighter). Moving back by ``s`` adds ``s`` to every view depth,
    so k is solved for in closed form, then checked with :meth:`Cameras.project`.

    Args:
        points: (N, 3) points that must be seen, e.g. the shape's point cloud.
        eyes: (V, 3) initial camera centres, e.g. :func:`view_sphere`.

    Returns:
        Cameras with the rotations of ``look_at(eyes, at, up)`` and the fitted translations.

    Raises:
        DataError: when some view needs more than ``max_steps`` steps (the shape is far larger
            than the view sphere, e.g. not normalised).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise DataError(f"fit_cameras needs a non-empty (N, 3) point array, got {points.shape}")
    if step <= 0:
        raise ConfigError(f"camera step must be > 0, got {step}")
    R, T = look_at(eyes, at, up)
    base = Cameras(R, T, fov_degrees, image_size, znear)
    view = base.to_view(points)
    # inside <=> |x|, |y| <= (z + s) tan(fov/2) and z + s > znear
    need = np.maximum(np.abs(view[..., :2]).max(axis=-1) / base.tan_half_fov, znear) - view[..., 2]
    k = np.maximum(np.ceil(need.max(axis=1) / step - 1e-9), 0).astype(np.int64)
    for _ in range(4):  # absorb rounding at the image border
        shifted = Cameras(
            R, T + (k * step)[:, None] * np.array([0.0, 0.0, 1.0]), *_intrinsics(base)
        )
        ok = inside_image(*shifted.project(points), image_size, znear).all(axis=1)
        if ok.all():
            break
        k = k + ~ok
    if k.max() > max_steps or not ok.all():
        v = int(np.argmax(k))
        raise DataError(
            f"view {v} (eye {np.asarray(eyes)[v].tolist()}) needs {int(k[v])} steps of {step} to "
            f"see all {len(points)} points, more than max_steps={max_steps}; is the shape "
            "normalised to the unit box?"
        )
    return shifted


def _intrinsics(cameras: Cameras) -> tuple[float, int, float]:
    """The intrinsics ``(fov_degrees, image_size, znear)`` of ``cameras``."""
    return cameras.fov_degrees, cameras.image_size, cameras.znear
