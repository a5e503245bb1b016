"""One check that a shape's files agree: its point cloud on its mesh, its keypoints at their
points (the real sample chair, and the same files made to disagree)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bt3d.consistency import check_points
from bt3d.errors import DataError
from bt3d.io import load_mesh, load_points, read_annotations


@pytest.fixture(scope="module")
def chair(shared_data: Path):
    sample = shared_data / "keypointnet-sample"
    pcd = next((sample / "pcds" / "03001627").glob("*.pcd"))
    mesh = load_mesh(sample / "ShapeNetCore.v2.ply" / "03001627" / f"{pcd.stem}.ply")
    (ann,) = [
        a for a in read_annotations(sample / "annotations" / "chair.json") if a.model_id == pcd.stem
    ]
    return mesh, load_points(pcd), pcd, ann


def test_the_real_chair_agrees_with_its_mesh_and_annotation(chair) -> None:
    mesh, points, pcd, ann = chair
    assert check_points(mesh, points, pcd) < 1e-5
    assert check_points(ann, points, pcd) < 1e-5


def test_disagreeing_files_are_named(chair) -> None:
    mesh, points, pcd, ann = chair
    with pytest.raises(DataError, match=rf"{pcd} does not lie on {mesh.source}: point \d+"):
        check_points(mesh, points * 1000, pcd)  # millimetres beside metres
    moved = np.roll(points, 1, axis=0)  # the indices refer to another point cloud
    with pytest.raises(DataError, match="point indices refer to another point cloud"):
        check_points(ann, moved, pcd)
    with pytest.raises(DataError, match=rf"out of range for the 10 points of {pcd}"):
        check_points(ann, points[:10], pcd)
    arrays = ("semantic_ids", "point_indices", "xyz", "face_indices", "face_uvs")
    no_keypoints = replace(ann, **{name: getattr(ann, name)[:0] for name in arrays})
    assert check_points(no_keypoints, points, pcd) == 0.0
