"""bt3d.synthetic: the generated dataset loads with the real readers and is geometrically sound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bt3d.errors import ConfigError
from bt3d.io import (
    CATEGORY_IDS,
    KeypointNetDataset,
    read_pcd,
    validate_annotation,
)
from bt3d.selection import few_shot_split
from bt3d.synthetic import (
    GENERATED_CATEGORIES,
    KEYPOINT_LABELS,
    generate_dataset,
    main,
    make_shape,
    model_id_of,
)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _shapes(root: Path):
    ds = KeypointNetDataset(root)
    for category in GENERATED_CATEGORIES:
        for model_id, ann in ds.annotations(category).items():
            yield (
                category,
                ds,
                ann,
                ds.load_mesh(category, model_id),
                ds.load_points(category, model_id),
            )


def test_deterministic_and_independent_of_count(tmp_path: Path, tiny_dataset: Path) -> None:
    a = generate_dataset(tmp_path / "a", categories=("chair",), shapes_per_category=2, seed=3)
    b = generate_dataset(tmp_path / "b", categories=("chair",), shapes_per_category=2, seed=3)
    assert _files(a) == _files(b)
    c = generate_dataset(tmp_path / "c", categories=("chair",), shapes_per_category=2, seed=0)
    assert _files(c) != _files(a)
    # shape i of a seed does not depend on how many shapes are generated
    tiny = _files(tiny_dataset)
    for name, data in _files(c).items():
        if name.startswith(("pcds", "ShapeNetCore")):
            assert tiny[name] == data


def test_layout_counts_and_splits(tiny_dataset: Path) -> None:
    ds = KeypointNetDataset(tiny_dataset)
    assert ds.missing_files(GENERATED_CATEGORIES) == []
    order = ds.sample_order()
    assert len(order) == 12 and len(set(order)) == 12
    for category in GENERATED_CATEGORIES:
        class_id = CATEGORY_IDS[category]
        ids = set(ds.annotations(category))
        assert ids == {model_id_of(category, i, 0) for i in range(4)}
        assert all(len(m) == 32 and int(m, 16) >= 0 for m in ids)
        assert {m for c, m in order if c == class_id} == ids
        labelled, test = few_shot_split(order, class_id, 3)
        assert len(labelled) == 3 and len(test) == 1
    splits = [
        (tiny_dataset / f"splits-{s}.txt").read_text().split() for s in ("train", "val", "test")
    ]
    flat = [line for split in splits for line in split]
    assert len(flat) == len(set(flat)) == 12 and all(splits)
    assert {tuple(x.split("-")) for x in flat} == set(order)
    labels = json.loads((tiny_dataset / "keypoint_labels.json").read_text())
    assert labels["class_mapping"] == {CATEGORY_IDS[c]: c for c in GENERATED_CATEGORIES}
    for category, _ds, ann, _mesh, _points in _shapes(tiny_dataset):
        assert {str(s) for s in ann.semantic_ids} <= set(labels["keypoint_labels"][category])


def test_geometry_keypoints_on_surface_and_in_cloud(tiny_dataset: Path) -> None:
    for _category, _ds, ann, mesh, points in _shapes(tiny_dataset):
        assert points.shape == (2048, 3)
        assert 2000 <= len(mesh.faces) <= 15000
        validate_annotation(ann, n_points=len(points), n_faces=len(mesh.faces))
        corners = mesh.vertices[mesh.faces[ann.face_indices]]
        on_surface = np.einsum("kc,kcd->kd", ann.face_uvs, corners)
        np.testing.assert_allclose(on_surface, ann.xyz, atol=1e-12)
        np.testing.assert_allclose(ann.face_uvs.sum(axis=1), 1.0)
        np.testing.assert_allclose(points[ann.point_indices], ann.xyz, atol=1e-6)
        assert len(set(ann.point_indices.tolist())) == ann.num_keypoints
        lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
        np.testing.assert_allclose(np.linalg.norm(hi - lo), 1.0, atol=1e-6)
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)
        # every edge is shared by exactly two faces: each part is a closed surface
        edges = np.sort(mesh.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        _, counts = np.unique(edges, axis=0, return_counts=True)
        assert (counts == 2).all()
        np.testing.assert_allclose(np.linalg.norm(mesh.vertex_normals, axis=1), 1.0, atol=1e-6)
        assert mesh.vertex_colors is not None


def test_points_on_mesh_surface(tiny_dataset: Path) -> None:
    """Sampled points lie on the mesh: each is within PCD rounding of some face's plane."""
    ds = KeypointNetDataset(tiny_dataset)
    model_id = model_id_of("table", 0, 0)
    mesh = ds.load_mesh("table", model_id)
    points, colors = read_pcd(ds.pcd_path("table", model_id))
    tri = mesh.triangles
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    sample = points[::64].astype(np.float64)
    plane = np.abs(np.einsum("fd,pfd->pf", normal, sample[:, None] - tri[None, :, 0]))
    # plane distance alone can pass off-surface points, so require the nearest centroid too
    centroid = np.linalg.norm(sample[:, None] - tri.mean(axis=1)[None], axis=2)
    near = centroid < 0.05
    assert (np.where(near, plane, np.inf).min(axis=1) < 2e-6).all()
    assert len(np.unique(colors, axis=0)) > 1


def test_symmetries_are_mirror_pairs(tiny_dataset: Path) -> None:
    for _category, _ds, ann, _mesh, _points in _shapes(tiny_dataset):
        assert set(ann.symmetries) == {"reflection", "rotation"}
        for group in ann.symmetries["reflection"]:
            i, j = group["kp_indexes"]
            a, b = ann.xyz[i], ann.xyz[j]
            np.testing.assert_allclose([a[0], a[1], a[2]], [-b[0], b[1], b[2]], atol=0.02)
        for group in ann.symmetries["rotation"]:
            assert group["is_circle"] is False and len(group["kp_indexes"]) >= 3


def test_intra_class_variation() -> None:
    chairs = [make_shape("chair", i, n_points=256) for i in range(16)]
    kinds = {tuple(c.annotation.semantic_ids.tolist()) for c in chairs}
    assert len(kinds) >= 3  # e.g. with/without arms, swivel base
    heights = [np.ptp(c.mesh.vertices[:, 1]) for c in chairs]
    assert np.std(heights) > 0.01
    planes = [make_shape("airplane", i, n_points=256) for i in range(16)]
    assert len({p.annotation.num_keypoints for p in planes}) >= 2  # engine count varies
    tables = [make_shape("table", i, n_points=256) for i in range(16)]
    assert len({len(t.annotation.symmetries["rotation"]) for t in tables}) == 2  # round/square
    for category, shapes in (("chair", chairs), ("airplane", planes), ("table", tables)):
        for shape in shapes:
            assert set(shape.annotation.semantic_ids.tolist()) <= set(KEYPOINT_LABELS[category])


def test_cli_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main([str(tmp_path / "out"), "--shapes", "1", "--categories", "table", "--seed", "2"]) == 0
    )
    assert "wrote 1 x 1 synthetic shapes" in capsys.readouterr().out
    assert (tmp_path / "out" / "annotations" / "table.json").is_file()
    assert not (tmp_path / "out" / "annotations" / "chair.json").exists()
    with pytest.raises(ConfigError, match="synthetic category 'mug' is not generated"):
        generate_dataset(tmp_path / "bad", categories=("mug",))
    with pytest.raises(ConfigError, match="shapes_per_category >= 1"):
        generate_dataset(tmp_path / "bad", shapes_per_category=0)
