"""Fuzzing the readers: random bytes and mutated valid files either load or raise DataError."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bt3d.errors import DataError
from bt3d.io import (
    read_annotations,
    read_pcd,
    read_ply,
    read_sample_order,
    write_annotations,
    write_pcd,
    write_ply,
)
from bt3d.synthetic import make_shape

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE = SHARED / "keypointnet-sample"
FUZZ = settings(
    max_examples=100,
    deadline=5000,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_counter = itertools.count()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    """Valid files per reader: written by our writers, plus the real sample when present."""
    tmp = tmp_path_factory.mktemp("fuzz_seeds")
    shape = make_shape("chair", 1, n_points=64)
    small = shape.mesh
    write_pcd(tmp / "p.pcd", shape.points, shape.point_colors)
    write_ply(tmp / "a.ply", small)
    write_ply(tmp / "l.ply", small, fmt="binary_little_endian")
    write_ply(tmp / "b.ply", small, fmt="binary_big_endian")
    write_annotations(
        tmp / "a.json", [shape.annotation], {shape.annotation.model_id: shape.keypoint_colors}
    )
    out = {
        "pcd": [(tmp / "p.pcd").read_bytes()],
        "ply": [(tmp / n).read_bytes() for n in ("a.ply", "l.ply", "b.ply")],
        "json": [(tmp / "a.json").read_bytes()],
        "csv": [b"class_id,mesh_id\n03001627,abc\n04379243,0123456789abcdef\n"],
    }
    if SAMPLE.is_dir():
        model = "03001627/88382b877be91b2a572f8e1c1caad99e"
        out["pcd"].append((SAMPLE / "pcds" / f"{model}.pcd").read_bytes())
        out["ply"].append((SAMPLE / "ShapeNetCore.v2.ply" / f"{model}.ply").read_bytes())
        out["ply"].append((SHARED / "bt3d-airplane.ply").read_bytes())
        records = json.loads((SAMPLE / "annotations" / "chair.json").read_text())[:3]
        out["json"].append(json.dumps(records).encode())
        lines = (SHARED / "benchmark_indices.csv").read_bytes().splitlines(keepends=True)
        out["csv"].append(b"".join(lines[:40]))
    out["dir"] = [str(tmp).encode()]
    return out


def _mutate(data: bytes, kind: int, a: int, b: int, noise: bytes) -> bytes:
    """One of: truncate, flip bytes, delete lines, duplicate a line, insert noise."""
    n = max(len(data), 1)
    i, j = sorted((a % n, b % n))
    if kind == 0:
        return data[:i]
    if kind == 1:
        out = bytearray(data)
        for k, byte in enumerate(noise[:8] or b"\xff"):
            out[(i + k * 997) % n] ^= byte or 1
        return bytes(out)
    lines = data.splitlines(keepends=True)
    m = max(len(lines), 1)
    li, lj = sorted((a % m, b % m))
    if kind == 2:
        return b"".join(lines[:li] + lines[lj + 1 :])
    if kind == 3:
        return b"".join(lines[: li + 1] + lines[li:])
    return data[:i] + noise + data[i:]


MUTATION = st.tuples(
    st.integers(0, 4),
    st.integers(0, 2**31),
    st.integers(0, 2**31),
    st.binary(min_size=0, max_size=24),
    st.integers(0, 10),
)


def _check(reader: Callable, data: bytes, tmp: Path) -> None:
    path = tmp / f"f{next(_counter)}"
    path.write_bytes(data)
    try:
        reader(path)
    except DataError as exc:
        assert str(path) in str(exc)  # the message names the file
    finally:
        path.unlink()


READERS = {"pcd": read_pcd, "ply": read_ply, "json": read_annotations, "csv": read_sample_order}


@pytest.mark.parametrize("kind", list(READERS))
def test_mutated_files(kind: str, seeds: dict[str, list[bytes]]) -> None:
    tmp = Path(seeds["dir"][0].decode())

    @FUZZ
    @given(mutation=MUTATION)
    def run(mutation: tuple[int, int, int, bytes, int]) -> None:
        op, a, b, noise, which = mutation
        base = seeds[kind][which % len(seeds[kind])]
        _check(READERS[kind], _mutate(base, op, a, b, noise), tmp)

    run()


@pytest.mark.parametrize("kind", list(READERS))
def test_random_bytes(kind: str, seeds: dict[str, list[bytes]]) -> None:
    tmp = Path(seeds["dir"][0].decode())
    prefix = {
        "pcd": b"VERSION .7\nFIELDS x y z rgb\n",
        "ply": b"ply\nformat ",
        "json": b"[{",
        "csv": b"class_id,mesh_id\n",
    }[kind]

    @FUZZ
    @given(body=st.binary(max_size=400), with_prefix=st.booleans())
    def run(body: bytes, with_prefix: bool) -> None:
        _check(READERS[kind], (prefix if with_prefix else b"") + body, tmp)

    run()


def test_valid_seeds_load(seeds: dict[str, list[bytes]]) -> None:
    """The unmutated seeds load (so that the fuzzing starts from valid files)."""
    tmp = Path(seeds["dir"][0].decode())
    for kind, reader in READERS.items():
        for data in seeds[kind]:
            path = tmp / "seed"
            path.write_bytes(data)
            result = reader(path)
            assert len(result[0] if kind == "pcd" else result.faces if kind == "ply" else result)
