"""Artifact cache: atomic writes, .npz header checks, float16 geodesics, JSON files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bt3d
from bt3d.cache import (
    FORMAT_VERSION,
    atomic_write,
    config_hash,
    decode_geodesic,
    encode_geodesic,
    load_arrays,
    load_geodesics,
    load_json,
    load_json_artifact,
    save_arrays,
    save_geodesics,
    save_json_atomic,
)
from bt3d.errors import CacheError

HEADER = {
    "config_hash": "abc123",
    "backbone": "classical",
    "class_id": "03001627",
    "model_id": "m0",
}


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "features": rng.normal(size=(7, 5)).astype(np.float32),
        "counts": np.arange(7, dtype=np.int64),
    }


def test_round_trip_keeps_arrays_dtypes_and_header(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "shape.npz"
    arrays = _arrays()
    save_arrays(path, arrays, HEADER)
    loaded, header = load_arrays(path, expected=HEADER)
    assert set(loaded) == {"features", "counts"}
    for name, value in arrays.items():
        assert loaded[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded[name], value)
    assert header["format_version"] == FORMAT_VERSION
    assert header["bt3d_version"] == bt3d.__version__
    assert header["model_id"] == "m0"
    assert [p.name for p in path.parent.iterdir()] == ["shape.npz"]


def test_header_mismatch_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "shape.npz"
    save_arrays(path, _arrays(), HEADER)
    with pytest.raises(CacheError, match=r"shape\.npz.*'backbone'.*'classical'.*'dinov2"):
        load_arrays(path, expected={"backbone": "dinov2_vits14_offline"})
    with pytest.raises(CacheError, match="no field 'layer'"):
        load_arrays(path, expected={"layer": "last_norm"})


def test_old_format_version_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "old.npz"
    save_arrays(path, _arrays(), {**HEADER, "format_version": FORMAT_VERSION - 1})
    with pytest.raises(CacheError, match="format_version"):
        load_arrays(path)


def test_truncated_file_raises_cache_error(tmp_path: Path) -> None:
    path = tmp_path / "shape.npz"
    save_arrays(path, _arrays(), HEADER)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheError, match=r"shape\.npz.*truncated or corrupt"):
        load_arrays(path)


def test_garbage_and_foreign_files_raise_cache_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(CacheError, match="garbage.npz"):
        load_arrays(garbage)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(CacheError, match="not a bt3d artifact"):
        load_arrays(foreign)
    with pytest.raises(CacheError, match="does not exist"):
        load_arrays(tmp_path / "missing.npz")


def test_exception_inside_atomic_write_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as handle:
            handle.write(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_exception_inside_atomic_write_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with atomic_write(path, mode="w") as handle:
        handle.write("old")
    with pytest.raises(KeyError):
        with atomic_write(path, mode="w") as handle:
            handle.write("new")
            raise KeyError("boom")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_config_hash_is_stable_and_order_free() -> None:
    a = config_hash({"sigma": 0.01, "views": [12, 5], "backbone": "classical"})
    b = config_hash({"backbone": "classical", "views": (12, 5), "sigma": np.float64(0.01)})
    assert a == b
    assert len(a) == 12
    assert config_hash({"sigma": 0.02, "views": [12, 5], "backbone": "classical"}) != a


def test_geodesic_float16_precision_is_as_documented() -> None:
    rng = np.random.default_rng(1)
    d = rng.uniform(0.0, 3.7, size=(50, 50))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    encoded, scale = encode_geodesic(d)
    assert encoded.dtype == np.float16
    assert scale == pytest.approx(d.max())
    decoded = decode_geodesic(encoded, scale)
    assert np.abs(decoded / scale - d / scale).max() <= 2.5e-4
    with pytest.raises(CacheError, match="finite"):
        encode_geodesic(np.array([[0.0, np.inf], [np.inf, 0.0]]))


def test_json_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "pred" / "chair.json"
    data = {"m0": {"indices": np.array([3, 1]), "confidence": np.float32(0.5)}}
    save_json_atomic(path, data)
    back = load_json_artifact(path)
    assert back.pop("header")["format_version"] == FORMAT_VERSION
    assert back == {"m0": {"indices": [3, 1], "confidence": 0.5}}
    path.write_text('{"m0": [1, 2')
    with pytest.raises(CacheError, match=r"chair\.json.*malformed JSON"):
        load_json(path)
    with pytest.raises(CacheError, match="does not exist"):
        load_json(tmp_path / "nope.json")


def test_geodesics_file_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pts = rng.normal(size=(30, 3))
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    path = save_geodesics(tmp_path / "g.npz", d, {"model_id": "m1", "knn": 20})
    raw, normalised, header = load_geodesics(path, expected={"model_id": "m1"})
    assert header["kind"] == "geodesics"
    assert np.abs(raw - d).max() <= 2.5e-4 * d.max()
    assert normalised.max() == pytest.approx(1.0)
    save_arrays(tmp_path / "f.npz", _arrays(), HEADER)
    with pytest.raises(CacheError, match="'kind'"):
        load_geodesics(tmp_path / "f.npz")
