"""Time the candidate render backends on the paper's 62 views at 224 x 224.

Prints, for one mesh, the wall-clock (best of ``--repeat``) of:

* the bt3d stages the pipeline calls (``fit_cameras``, ``render`` with shading, ``nearest_faces``,
  ``point_visibility``, ``project``) with the default ``embree`` backend;
* the first-hit ray cast alone (face ids + depth, no culling, no shading) with each importable
  candidate library: embreex (bt3d's backend), Open3D ``RaycastingScene``, NVIDIA Warp
  ``mesh_query_ray`` (CPU, and CUDA when present), and PyTorch3D's full ``render`` when present.

Absent libraries are skipped with a message. Open3D and Warp are not project dependencies; to
measure them without touching the project venv::

    python3 -m venv /tmp/benchvenv
    /tmp/benchvenv/bin/pip install numpy scipy trimesh embreex rtree open3d-cpu warp-lang
    PYTHONPATH=/work/main /tmp/benchvenv/bin/python benchmarks/render_backends.py

The mesh is a procedural ~10k-face torus (self-occluding) unless ``--mesh PATH``
is given (any file trimesh reads, e.g. a KeypointNet PLY).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import trimesh

from bt3d.cameras import Cameras, fit_cameras, view_sphere
from bt3d.render import available_backends, render
from bt3d.structures import Mesh
from bt3d.visibility import nearest_faces, point_visibility


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """(best wall seconds, CPU seconds of that run, last result) over ``repeat`` runs."""
    best, cpu, out = np.inf, np.inf, None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if w < best:
            best, cpu = w, c
    return best, cpu, out


def load_mesh(path: str | None) -> trimesh.Trimesh:
    if path:
        loaded = trimesh.load(path, force="mesh", process=False)
        loaded.apply_translation(-loaded.bounds.mean(axis=0))
        loaded.apply_scale(1.0 / np.linalg.norm(loaded.extents))
        return loaded
    torus = trimesh.creation.torus(
        major_radius=0.3, minor_radius=0.12, major_sections=100, minor_sections=50
    )
    torus.apply_transform(trimesh.transformations.rotation_matrix(0.6, [1, 0, 0]))
    return torus


def rays_of(cams: Cameras) -> tuple[np.ndarray, np.ndarray]:
    origins, directions = cams.rays()
    return (
        np.ascontiguousarray(origins.reshape(-1, 3), dtype=np.float32),
        np.ascontiguousarray(directions.reshape(-1, 3), dtype=np.float32),
    )


def cast_embreex(tm: trimesh.Trimesh, origins, directions):
    from embreex import rtcore_scene
    from embreex.mesh_construction import TriangleMesh

    scene = rtcore_scene.EmbreeScene()
    TriangleMesh(
        scene=scene, vertices=tm.vertices.astype(np.float32), indices=tm.faces.astype(np.int32)
    )
    out = scene.run(origins, directions, output=1)
    return out["primID"].astype(np.int64)


def cast_open3d(tm: trimesh.Trimesh, origins, directions):
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(tm.vertices.astype(np.float32)),
        o3d.core.Tensor(tm.faces.astype(np.uint32)),
    )
    rays = o3d.core.Tensor(np.concatenate([origins, directions], axis=1))
    ans = scene.cast_rays(rays, nthreads=0)
    ids = ans["primitive_ids"].numpy().astype(np.int64)
    return np.where(ids == o3d.t.geometry.RaycastingScene.INVALID_ID, -1, ids)


def make_warp_caster(device: str):
    import warp as wp

    wp.config.quiet = True
    wp.init()

    @wp.kernel
    def first_hit(
        mesh: wp.uint64,
        origins: wp.array(dtype=wp.vec3),
        directions: wp.array(dtype=wp.vec3),
        face: wp.array(dtype=wp.int32),
        depth: wp.array(dtype=wp.float32),
    ):
        i = wp.tid()
        q = wp.mesh_query_ray(mesh, origins[i], directions[i], 1.0e6)
        if q.result:
            face[i] = q.face
            depth[i] = q.t
        else:
            face[i] = -1
            depth[i] = 1.0e30

    def cast(tm: trimesh.Trimesh, origins, directions):
        mesh = wp.Mesh(
            points=wp.array(tm.vertices.astype(np.float32), dtype=wp.vec3, device=device),
            indices=wp.array(tm.faces.astype(np.int32).ravel(), dtype=wp.int32, device=device),
        )
        o = wp.array(origins, dtype=wp.vec3, device=device)
        d = wp.array(directions, dtype=wp.vec3, device=device)
        face = wp.empty(len(origins), dtype=wp.int32, device=device)
        depth = wp.empty(len(origins), dtype=wp.float32, device=device)
        wp.launch(first_hit, dim=len(origins), inputs=[mesh.id, o, d, face, depth], device=device)
        wp.synchronize_device(device)
        return face.numpy().astype(np.int64)

    return cast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mesh", help="mesh file; default a procedural ~10k-face torus")
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    tm = load_mesh(args.mesh)
    mesh = Mesh(tm.vertices, tm.faces)
    points = np.asarray(tm.sample(args.points, seed=0))
    print(f"mesh: {args.mesh or 'procedural torus'}, {len(tm.faces)} faces; {args.points} points")
    print(f"CPU cores visible: {os.cpu_count()}; times: best of {args.repeat} (wall, process CPU)")

    eyes = view_sphere()
    t, c, cams = best_of(lambda: fit_cameras(points, eyes, image_size=args.image_size), args.repeat)
    print(f"  fit_cameras ({len(eyes)} views)        {t:7.3f} s  (cpu {c:6.3f})")
    t, c, rast = best_of(lambda: render(mesh, cams), args.repeat)
    print(f"  render embree, culled, shaded     {t:7.3f} s  (cpu {c:6.3f})")
    t, c, _ = best_of(lambda: render(mesh, cams, cull_backfaces=False), args.repeat)
    print(f"  render embree, no culling, shaded {t:7.3f} s  (cpu {c:6.3f})")
    t, c, nearest = best_of(lambda: nearest_faces(mesh, points), args.repeat)
    print(f"  nearest_faces                     {t:7.3f} s  (cpu {c:6.3f})")
    t, c, _ = best_of(lambda: point_visibility(mesh, points, rast.face_ids, nearest), args.repeat)
    print(f"  point_visibility (given nearest)  {t:7.3f} s  (cpu {c:6.3f})")
    t, c, _ = best_of(lambda: cams.project(points), args.repeat)
    print(f"  project                           {t:7.3f} s  (cpu {c:6.3f})")
    print(f"  foreground pixels: {(rast.face_ids >= 0).mean():.1%}")

    def chain():  # as bt3d.pipeline calls it
        cameras = fit_cameras(points, eyes, image_size=args.image_size)
        faces = render(mesh, cameras).face_ids
        return point_visibility(mesh, points, faces), cameras.project(points)

    t, c, _ = best_of(chain, args.repeat)
    print(f"  total fit+render+visibility+project {t:5.3f} s  (cpu {c:6.3f})")

    origins, directions = rays_of(cams)
    print(f"first-hit ray cast only, {len(origins)} rays (no culling, no shading):")
    reference = None
    candidates: list[tuple[str, Callable[[], Callable]]] = [
        ("embreex (bt3d embree)", lambda: cast_embreex),
        ("open3d RaycastingScene", lambda: cast_open3d),
        ("warp cpu", lambda: make_warp_caster("cpu")),
        ("warp cuda", lambda: make_warp_caster("cuda")),
    ]
    for name, factory in candidates:
        try:
            caster = factory()
            if name == "warp cuda":
                import warp as wp

                if not wp.is_cuda_available():
                    raise RuntimeError("no CUDA device")
            caster(tm, origins[:10], directions[:10])  # import, JIT compile, warm up
        except Exception as error:  # noqa: BLE001 - any failure means "not available here"
            print(f"  {name:28s} skipped: {type(error).__name__}: {str(error)[:80]}")
            continue
        t, c, ids = best_of(lambda caster=caster: caster(tm, origins, directions), args.repeat)
        if reference is None:
            reference = ids
        agree = (ids == reference).mean()
        print(f"  {name:28s} {t:7.3f} s  (cpu {c:6.3f})  face ids = embreex on {agree:.4%}")

    if "pytorch3d" in available_backends():
        t, c, _ = best_of(lambda: render(mesh, cams, backend="pytorch3d"), args.repeat)
        print(f"  pytorch3d render (cpu)       {t:7.3f} s  (cpu {c:6.3f})")
    else:
        print("  pytorch3d                    skipped: not importable")


if __name__ == "__main__":
    main()
