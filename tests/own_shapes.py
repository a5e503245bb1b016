"""Builders of the own-shapes tests (`bt3d detect` and its Snakemake mode): three labelled
meshes with MeshLab .pp files they write and a folder of meshes in mixed formats and scales,
with the true keypoints under the same transforms (see tests/test_detect.py's docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

REAL_CHAIR = "88382b877be91b2a572f8e1c1caad99e"
CHAIR = "03001627"
# (format, scale, translation) of the ten folder meshes
FOLDER = [
    ("obj", 1.0, (0.0, 0.0, 0.0)),
    ("obj", 1000.0, (250.0, -40.0, 3.0)),
    ("ply", 0.05, (1.0, 2.0, 3.0)),
    ("ply", 25.4, (0.0, 12.0, 0.0)),
    ("stl", 1.0, (-0.5, 0.0, 0.2)),
    ("stl", 100.0, (0.0, 0.0, -80.0)),
    ("off", 3.0, (0.0, 1.5, 0.0)),
    ("off", 0.5, (0.1, 0.1, 0.1)),
    ("glb", 10.0, (5.0, 0.0, 0.0)),
    ("glb", 1.0, (0.0, -2.0, 0.0)),
]


def keypoint_name(semantic_id: int) -> str:
    from bt3d.synthetic import KEYPOINT_LABELS

    label = KEYPOINT_LABELS["chair"][semantic_id].replace(" of the chair", "")
    return f"{label} {semantic_id}"


def export_mesh(vertices: np.ndarray, faces: np.ndarray, path: Path, scale: float, shift) -> None:
    """Write a mesh scaled and moved; a .glb keeps the vertices and puts the transform on
    the scene node (so reading it needs the scene flattened)."""
    import trimesh

    shift = np.asarray(shift, dtype=np.float64)
    if path.suffix == ".glb":
        transform = np.eye(4)
        transform[:3, :3] *= scale
        transform[:3, 3] = shift
        scene = trimesh.Scene()
        scene.add_geometry(trimesh.Trimesh(vertices, faces, process=False), transform=transform)
        scene.export(path)
    else:
        trimesh.Trimesh(vertices * scale + shift, faces, process=False).export(path)


def write_meshlab_pp(path: Path, names: list[str], xyz: np.ndarray, mesh_name: str) -> None:
    """A .pp file as MeshLab writes it (DocumentData, one <point> per landmark)."""
    lines = [
        "<!DOCTYPE PickedPoints>",
        "<PickedPoints>",
        " <DocumentData>",
        '  <DateTime time="10:00:00" date="2026-12-03"/>',
        '  <User name="test"/>',
        f'  <DataFileName name="{mesh_name}"/>',
        '  <templateName name=""/>',
        " </DocumentData>",
    ]
    for name, p in zip(names, xyz, strict=True):
        lines.append(f' <point x="{p[0]}" y="{p[1]}" z="{p[2]}" active="1" name="{name}"/>')
    lines.append("</PickedPoints>")
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Case:
    root: Path
    labelled: list[Path]  # MESH LABELS MESH LABELS ...
    folder: Path
    truth: dict[str, dict[str, np.ndarray]]  # stem -> name -> true xyz (file frame)
    diagonals: dict[str, float]


def build_case(root: Path, shared: Path, folder_meshes=FOLDER, extra_labelled: int = 0) -> Case:
    """Three labelled meshes with .pp files, a folder of ten meshes, their true keypoints.

    ``folder_meshes``: (format, scale, translation) per folder mesh; ``extra_labelled``: more
    labelled synthetic chairs (``synthetic_chair_2.ply`` ...), listed after the three.
    """
    from bt3d.io import read_annotations, read_ply
    from bt3d.synthetic import generate_dataset

    data = generate_dataset(root / "synthetic", categories=("chair",), shapes_per_category=12)
    anns = read_annotations(data / "annotations" / "chair.json")
    labelled_dir, folder = root / "labelled", root / "shapes"
    labelled_dir.mkdir()
    folder.mkdir()
    labelled: list[Path] = []
    sample = shared / "keypointnet-sample"
    real = next(
        a for a in read_annotations(sample / "annotations/chair.json") if a.model_id == REAL_CHAIR
    )
    real_mesh = read_ply(sample / f"ShapeNetCore.v2.ply/{CHAIR}/{REAL_CHAIR}.ply")
    sources = [(real_mesh, real, 1000.0, (120.0, 450.0, -30.0), "real_chair_mm.obj")]
    for i in range(2 + extra_labelled):
        mesh = read_ply(data / f"ShapeNetCore.v2.ply/{CHAIR}/{anns[i].model_id}.ply")
        sources.append((mesh, anns[i], 1.0, (0.0, 0.0, 0.0), f"synthetic_chair_{i}.ply"))
    for mesh, ann, scale, shift, name in sources:
        path = labelled_dir / name
        export_mesh(mesh.vertices, mesh.faces, path, scale, shift)
        names = [keypoint_name(int(s)) for s in ann.semantic_ids]
        write_meshlab_pp(path.with_suffix(".pp"), names, ann.xyz * scale + np.asarray(shift), name)
        labelled += [path, path.with_suffix(".pp")]
    truth, diagonals = {}, {}
    for k, (fmt, scale, shift) in enumerate(folder_meshes):
        ann = anns[2 + extra_labelled + k]
        mesh = read_ply(data / f"ShapeNetCore.v2.ply/{CHAIR}/{ann.model_id}.ply")
        stem = f"chair_{k:02d}_x{scale:g}"
        export_mesh(mesh.vertices, mesh.faces, folder / f"{stem}.{fmt}", scale, shift)
        xyz = ann.xyz * scale + np.asarray(shift)
        truth[stem] = {keypoint_name(int(s)): p for s, p in zip(ann.semantic_ids, xyz, strict=True)}
        v = mesh.vertices * scale
        diagonals[stem] = float(np.linalg.norm(v.max(axis=0) - v.min(axis=0)))
    return Case(root, labelled, folder, truth, diagonals)
