"""The per-shape feature pipeline on a small real mesh with the weights-free backbone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import trimesh

from bt3d.backbones import get_backbone
from bt3d.errors import CacheError, DataError
from bt3d.pipeline import (
    STAGES,
    ShapeFeatures,
    StageTimer,
    extract_shape_features,
    load_shape_features,
    sample_surface,
    save_shape_features,
    shape_geodesic,
)
from bt3d.settings import FeatureSettings, GeodesicSettings, load_config
from bt3d.structures import Mesh

# 4 x 2 + 2 poles = 10 views, shapes as stored (normalise false), float32
CONFIG = load_config(
    overrides={
        "render": {"n_azimuth": 4, "n_polar": 2, "image_size": 112},
        "backbone": {"name": "classical", "layer": None, "precision": "float32"},
        "dataset": {"normalise": False},
    }
)
FEW_VIEWS = FeatureSettings.from_config(CONFIG)
GEODESIC = GeodesicSettings.from_config(CONFIG)


def _table_mesh() -> Mesh:
    """A small table: a top slab and four legs, about unit size, centred at the origin."""
    parts = [trimesh.creation.box(extents=(0.6, 0.05, 0.4), transform=_shift(0, 0.2, 0))]
    for x in (-0.25, 0.25):
        for z in (-0.15, 0.15):
            parts.append(trimesh.creation.box(extents=(0.05, 0.4, 0.05), transform=_shift(x, 0, z)))
    tm = trimesh.util.concatenate(parts)
    return Mesh(np.asarray(tm.vertices), np.asarray(tm.faces), source="table-primitive")


def _shift(x: float, y: float, z: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


@pytest.fixture(scope="module")
def table() -> tuple[Mesh, np.ndarray]:
    mesh = _table_mesh()
    return mesh, sample_surface(mesh, 300, seed=0)


@pytest.fixture(scope="module")
def classical():
    return get_backbone("classical", "cpu")


@pytest.fixture(scope="module")
def features(table, classical) -> tuple[ShapeFeatures, StageTimer]:
    mesh, points = table
    timer = StageTimer()
    with timer.stage("geodesics"):
        raw = shape_geodesic(mesh, points, GEODESIC, "table")
    return extract_shape_features(mesh, points, classical, FEW_VIEWS, raw, timer=timer), timer


def test_sample_surface_lies_on_the_mesh(table) -> None:
    mesh, points = table
    assert points.shape == (300, 3)
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    assert (points >= lo - 1e-9).all() and (points <= hi + 1e-9).all()
    again = sample_surface(mesh, 300, seed=0)
    np.testing.assert_array_equal(points, again)
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    _, dist, _ = tm.nearest.on_surface(points[:50])
    assert dist.max() < 1e-9


def test_outputs_have_documented_shapes_and_dtypes(features, classical) -> None:
    sf, _ = features
    n, c = 300, classical.feature_dim
    assert sf.features.shape == (n, c) and sf.features.dtype == np.float32
    assert sf.unsmoothed.shape == (n, c) and sf.unsmoothed.dtype == np.float32
    assert sf.counts.shape == (n,) and sf.counts.dtype == np.int64
    assert sf.geodesic.shape == (n, n) and sf.geodesic_normalised.shape == (n, n)
    assert sf.points.shape == (n, 3)
    assert np.isfinite(sf.features).all() and np.isfinite(sf.geodesic).all()
    assert sf.geodesic_normalised.max() == pytest.approx(1.0)


def test_most_points_are_seen_and_features_are_informative(features) -> None:
    sf, _ = features
    assert sf.counts.max() <= 10
    assert sf.seen_fraction > 0.9
    # unseen points get zeros before smoothing; seen points carry L1-normalised DAISY (sum 1)
    seen = sf.counts > 0
    np.testing.assert_allclose(sf.unsmoothed[seen].sum(axis=1), 1.0, rtol=1e-4)
    assert not sf.unsmoothed[~seen].any()
    # smoothing averages neighbours: features change but stay in the convex hull (sum 1)
    assert not np.allclose(sf.features, sf.unsmoothed)
    reached = sf.features.sum(axis=1) > 0
    np.testing.assert_allclose(sf.features[reached].sum(axis=1), 1.0, rtol=1e-4)


def test_timer_records_every_stage(features) -> None:
    _, timer = features
    assert [r.stage for r in timer.records] == list(STAGES)
    assert all(r.seconds >= 0 for r in timer.records)
    assert set(timer.totals()) == set(STAGES)


def test_a_geodesic_matrix_of_other_points_is_refused(table, classical, features) -> None:
    mesh, points = table
    sf, _ = features
    with pytest.raises(DataError, match=r"table-primitive.*\(300, 300\)"):
        extract_shape_features(mesh, points, classical, FEW_VIEWS, sf.geodesic[:5, :5])


def test_bad_points_are_rejected(table, classical, features) -> None:
    mesh, points = table
    bad = points.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="table-primitive.*NaN"):
        extract_shape_features(mesh, bad, classical, FEW_VIEWS, features[0].geodesic)


def test_save_load_round_trip_and_header_check(tmp_path: Path, features) -> None:
    sf, _ = features
    path = tmp_path / "feat.npz"
    header = {"config_hash": "h1", "backbone": "classical", "model_id": "t0"}
    save_shape_features(path, sf, header)
    loaded, got = load_shape_features(path, expected={"config_hash": "h1"})
    assert got["model_id"] == "t0"
    np.testing.assert_array_equal(loaded.features, sf.features)
    np.testing.assert_array_equal(loaded.counts, sf.counts)
    np.testing.assert_array_equal(loaded.points, sf.points)
    assert np.abs(loaded.geodesic_normalised - sf.geodesic_normalised).max() <= 2.5e-4
    assert np.abs(loaded.geodesic - sf.geodesic).max() <= 2.5e-4 * sf.geodesic.max()
    with pytest.raises(CacheError, match="config_hash"):
        load_shape_features(path, expected={"config_hash": "h2"})


def test_stage_timer_traces_numpy_peaks_when_asked() -> None:
    timer = StageTimer(trace_python=True)
    with timer.stage("alloc"):
        block = np.ones(2**20, dtype=np.float64)  # 8 MiB
        del block
    with timer.stage("small"):
        np.ones(10)
    alloc, small = timer.records
    assert alloc.python_peak_mb is not None and 7.5 < alloc.python_peak_mb < 12
    assert small.python_peak_mb < 1
    assert StageTimer().records == []


def test_normalise_renders_any_scale_and_position_like_the_unit_box(table, classical) -> None:
    mesh, points = table
    scale, offset = 250.0, np.array([10.0, -3.0, 7.0])
    big = Mesh(mesh.vertices * scale + offset, mesh.faces, source="table-in-millimetres")
    big_points = points * scale + offset
    with pytest.raises(
        DataError,
        match=r"^table-in-millimetres: view \d+ .* is the shape normalised to the unit box\? "
        r"\(dataset.normalise: true or bt3d features --normalise renders it at that scale\)$",
    ):
        extract_shape_features(big, big_points, classical, FEW_VIEWS, np.zeros((300, 300)))
    normalise = replace(FEW_VIEWS, normalise=True)
    big_geodesic = shape_geodesic(big, big_points, GEODESIC, "big")  # in the file's units
    unit_geodesic = shape_geodesic(mesh, points, GEODESIC, "unit")
    ours = extract_shape_features(big, big_points, classical, normalise, big_geodesic)
    unit = extract_shape_features(mesh, points, classical, normalise, unit_geodesic)
    assert np.array_equal(ours.counts, unit.counts)
    np.testing.assert_allclose(ours.features, unit.features, atol=1e-4)
    # geodesics stay in the shape's own units
    np.testing.assert_allclose(ours.geodesic, unit.geodesic * scale, rtol=1e-6)
