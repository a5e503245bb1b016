"""Shared pytest fixtures: the real KeypointNet sample files and a tiny synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real KeypointNet sample files); skips the test when absent."""
    if not (SHARED / "keypointnet-sample").is_dir():
        pytest.skip("../shared/data not present")
    return SHARED


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic KeypointNet-layout dataset: airplane, chair, table, 4 shapes each, seed 0.

    Layout as :func:`bt3d.synthetic.generate_dataset` writes it (annotations/, pcds/,
    ShapeNetCore.v2.ply/, benchmark_indices.csv, splits-*.txt, keypoint_labels.json).
    Session-scoped: treat it as read-only.
    """
    from bt3d.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("tiny_dataset")
    return generate_dataset(root, shapes_per_category=4, seed=0)
