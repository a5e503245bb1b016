"""Rasterisation by Embree ray casting (CPU), the default backend of :func:`bt3d.render.render`.

One ray per pixel centre (:meth:`bt3d.cameras.Cameras.rays`), all views batched into large
``embreex`` calls that run on a few threads (embreex releases the GIL). This is what
``trimesh.ray.ray_pyembree.RayMeshIntersector`` does inside; calling ``embreex`` directly gives
the hit distance in the same call (trimesh recomputes it) and keeps directions unnormalised so
that the distance is the view depth.

Back-face culling as in PyTorch3D's rasterizer: a face is back-facing in a view when its
winding normal ``(v1 - v0) x (v2 - v0)`` points away from the camera. Embree reports the
nearest hit of any winding, so a ray that hits a back face is cast again from just past it, until
it hits a front face or leaves the mesh. Coincident duplicate faces (ShapeNet models often
model two-sided surfaces as two copies with opposite windings) would be skipped together by that
step, so a back-facing hit with a front-facing copy at the same place reports the copy, as a
z-buffer with culling does.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bt3d.cameras import Cameras
from bt3d.errors import ConfigError
from bt3d.structures import Mesh

RAYS_PER_CALL = 1 << 19  # rays per embreex call; several calls run on parallel threads
MAX_RECASTS = 64  # back faces a single ray may pass through
RECAST_OFFSET = 1e-6  # step past a culled face, relative to the mesh's bounding-box diagonal


class EmbreeScene:
    """An Embree BVH of ``mesh``, queried in float32 around the mesh's bounding-box centre."""

    def __init__(self, mesh: Mesh):
        try:
            from embreex import rtcore_scene
            from embreex.mesh_construction import TriangleMesh
        except ImportError as error:  # pragma: no cover - embreex is a hard dependency
            raise ConfigError(
                "render backend 'embree' needs the embreex package: pip install embreex"
            ) from error
        lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
        self.offset = (lo + hi) / 2.0
        self.diagonal = max(float(np.linalg.norm(hi - lo)), 1e-12)
        self._scene = rtcore_scene.EmbreeScene()
        TriangleMesh(
            scene=self._scene,
            vertices=(mesh.vertices - self.offset).astype(np.float32),
            indices=mesh.faces.astype(np.int32),
        )

    def first_hits(
        self, origins: np.ndarray, directions: np.ndarray, threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit along each ray, any winding.

        Args:
            origins: (M, 3) relative to :attr:`offset` (the scene frame), float32.
            directions: (M, 3) float32, need not be unit.

        Returns:
            face: (M,) int32, -1 for a miss.
            t: (M,) float32 ray parameter of the hit (in units of the direction's length).
        """
        o = np.ascontiguousarray(origins, dtype=np.float32)
        d = np.ascontiguousarray(directions, dtype=np.float32)
        chunks = [slice(i, i + RAYS_PER_CALL) for i in range(0, len(o), RAYS_PER_CALL)]

        def run(chunk: slice) -> dict[str, np.ndarray]:
            return self._scene.run(o[chunk], d[chunk], output=1)

        if threads > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(run, chunks))
        else:
            parts = [run(chunk) for chunk in chunks]
        if len(parts) == 1:
            return parts[0]["primID"], parts[0]["tfar"]
        return (
            np.concatenate([p["primID"] for p in parts]),
            np.concatenate([p["tfar"] for p in parts]),
        )


def _footprint(mesh: Mesh, cameras: Cameras) -> np.ndarray:
    """(V * S * S,) bool: pixels inside the bounding box of the projected vertices, the only ones
    whose ray can hit the mesh (all of a view's pixels when a vertex is not in front of it)."""
    pixels, depth = cameras.project(mesh.vertices)
    s = cameras.image_size
    lo = np.floor(np.clip(pixels.min(axis=1) - 0.5, 0, s)).astype(np.int64)
    hi = np.ceil(np.clip(pixels.max(axis=1) - 0.5, -1, s - 1)).astype(np.int64)
    behind = (depth <= cameras.znear).any(axis=1)
    lo[behind], hi[behind] = 0, s - 1
    idx = np.arange(s)
    cols = (idx[None, :] >= lo[:, None, 0]) & (idx[None, :] <= hi[:, None, 0])
    rows = (idx[None, :] >= lo[:, None, 1]) & (idx[None, :] <= hi[:, None, 1])
    return (rows[:, :, None] & cols[:, None, :]).reshape(-1)


def _coincident_groups(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces with exactly the same three corner positions (in any order), grouped.

    Returns:
        group: (F,) group index of each face.
        members: (F,) faces sorted by group, then index.
        start: (G + 1,) where each group's members begin in ``members``.
    """
    tri = mesh.triangles
    order = np.lexsort((tri[:, :, 2], tri[:, :, 1], tri[:, :, 0]), axis=1)
    keys = np.take_along_axis(tri, order[:, :, None], axis=1).reshape(len(tri), 9)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    members = np.lexsort((np.arange(len(group)), group))
    start = np.searchsorted(group[members], np.arange(group.max() + 2))
    return group, members, start


def rasterize(
    mesh: Mesh,
    cameras: Cameras,
    cull_backfaces: bool = True,
    faces_per_pixel: int = 1,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Faces seen at every pixel centre of every view, nearest first.

    Args:
        mesh: the shape.
        cameras: V cameras of ``image_size`` S.
        cull_backfaces: skip faces seen from behind (see the module docstring).
        faces_per_pixel: K, how many faces to report along each ray (PyTorch3D's
            ``faces_per_pixel``: the K nearest faces covering the pixel centre, culled ones
            skipped).
        threads: parallel embree calls; default ``min(4, os.cpu_count())``.

    Returns:
        face_ids: (V, S, S, K) int64, -1 = background / no further face.
        depth: (V, S, S, K) float32 view depth of the hits, inf where there is none.
    """
    threads = threads or min(4, os.cpu_count() or 1)
    scene = EmbreeScene(mesh)
    n_views, s = len(cameras), cameras.image_size
    footprint = _footprint(mesh, cameras).reshape(n_views, s * s)  # rays that may hit the mesh
    live = np.flatnonzero(footprint)
    view_of = live // (s * s)
    d_view = cameras.view_directions().astype(np.float32)
    rotations = cameras.R.astype(np.float32)
    directions = np.concatenate([d_view[footprint[v]] @ rotations[v].T for v in range(n_views)])
    centres = cameras.centres()
    eyes = (centres - scene.offset).astype(np.float32)  # in the scene frame

    n_faces = len(mesh.faces)
    if cull_backfaces:
        tri = mesh.triangles
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        # (V, F): the winding normal points towards the camera
        front = (centres @ normals.T >= np.einsum("fi,fi->f", normals, tri[:, 0])).ravel()
        groups = _coincident_groups(mesh)

    k = faces_per_pixel
    face_ids = np.full((n_views * s * s, k), -1, dtype=np.int64)
    depth = np.full((n_views * s * s, k), np.inf, dtype=np.float32)
    layer = np.zeros(len(live), dtype=np.int64)  # faces found so far, per ray
    ray = np.arange(len(live))  # rays (into live) still looking for faces
    t0 = np.full(len(live), cameras.znear, dtype=np.float32)  # where each of them starts
    step = np.float32(RECAST_OFFSET * scene.diagonal)
    for attempt in range(MAX_RECASTS + k):
        if attempt == 0:  # all rays: avoid gathers
            d = directions
            o = np.repeat(eyes, footprint.sum(axis=1), axis=0) + np.float32(cameras.znear) * d
        else:
            d = directions[ray]
            o = eyes[view_of[ray]] + t0[:, None] * d
        face, t = scene.first_hits(o, d, threads)
        hit = face >= 0
        ray, face, t = ray[hit], face[hit].astype(np.int64), t0[hit] + t[hit]
        if cull_backfaces:
            view = view_of[ray]
            back = ~front[view * n_faces + face]
            face[back] = _front_copy(face[back], view[back], front, n_faces, *groups)
        take = face >= 0
        pixel, slot = live[ray[take]], layer[ray[take]]
        face_ids[pixel, slot] = face[take]
        depth[pixel, slot] = t[take]
        layer[ray[take]] += 1
        more = layer[ray] < k  # rays that found a back face, or fewer than k faces
        ray, t0 = ray[more], t[more] + step
        if len(ray) == 0:
            break
    shape = (n_views, s, s, k)
    return face_ids.reshape(shape), depth.reshape(shape)


def _front_copy(
    face: np.ndarray,
    view: np.ndarray,
    front: np.ndarray,
    n_faces: int,
    group: np.ndarray,
    members: np.ndarray,
    start: np.ndarray,
) -> np.ndarray:
    """For back-facing hits ``face`` (M,) in views ``view`` (M,), the lowest-index coincident
    copy that faces the camera (``front`` is the raveled (V, F) table), or -1 if none."""
    out = np.full(len(face), -1, dtype=np.int64)
    g = group[face]
    size = start[g + 1] - start[g]
    for j in range(int(size.max(initial=0))):
        todo = np.flatnonzero((out < 0) & (size > j))
        cand = members[start[g[todo]] + j]
        ok = front[view[todo] * n_faces + cand]
        out[todo[ok]] = cand[ok]
    return out
