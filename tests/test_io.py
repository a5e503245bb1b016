"""bt3d.io: the KeypointNet readers on the real sample files, round trips, and bad inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bt3d.errors import ConfigError, DataError
from bt3d.io import (
    CATEGORY_IDS,
    KeypointNetDataset,
    category_of,
    class_id_of,
    read_annotations,
    read_keypoint_labels,
    read_pcd,
    read_ply,
    read_sample_order,
    validate_annotation,
    write_annotations,
    write_pcd,
    write_ply,
    write_sample_order,
)
from bt3d.selection import few_shot_split
from bt3d.structures import Mesh, ShapeAnnotation

CHAIR = "03001627"
SAMPLE_MODEL = "88382b877be91b2a572f8e1c1caad99e"


@pytest.fixture(scope="module")
def sample(shared_data: Path) -> KeypointNetDataset:
    return KeypointNetDataset(shared_data / "keypointnet-sample")


def _tetra() -> Mesh:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
    normals = v - v.mean(axis=0)
    return Mesh(v, f, colors, normals, source="tetra")


def _annotation(model_id: str = "abc123", k: int = 2) -> ShapeAnnotation:
    return ShapeAnnotation(
        class_id=CHAIR,
        model_id=model_id,
        semantic_ids=np.arange(k),
        point_indices=np.arange(k) * 3,
        xyz=np.linspace(-0.5, 0.5, 3 * k).reshape(k, 3),
        face_indices=np.arange(k),
        face_uvs=np.tile([0.2, 0.3, 0.5], (k, 1)),
        symmetries={"reflection": [{"kp_indexes": [0, 1]}], "rotation": []},
    )


# ------------------------------------------------------------------------- categories


def test_sixteen_categories_and_lookups() -> None:
    assert len(CATEGORY_IDS) == 16
    assert class_id_of("chair") == CHAIR and category_of(CHAIR) == "chair"
    assert class_id_of(CHAIR) == CHAIR and category_of("table") == "table"
    with pytest.raises(ConfigError, match="unknown category 'sofa'.*airplane"):
        class_id_of("sofa")
    with pytest.raises(ConfigError, match="unknown class id '12345678'"):
        category_of("12345678")


# ------------------------------------------------------------------------ real sample


def test_real_pcd(sample: KeypointNetDataset) -> None:
    points, colors = read_pcd(sample.pcd_path(CHAIR, SAMPLE_MODEL))
    assert points.shape == (2048, 3) and points.dtype == np.float32
    assert colors.shape == (2048, 3) and colors.dtype == np.uint8
    # first data line: "-0.166991 -0.169660 0.113135 10975560" = 0xA77948
    np.testing.assert_allclose(points[0], [-0.166991, -0.169660, 0.113135], atol=1e-7)
    assert colors[0].tolist() == [0xA7, 0x79, 0x48]
    assert np.abs(sample.load_points("chair", SAMPLE_MODEL)).max() < 0.6


def test_real_ascii_ply_and_annotation(sample: KeypointNetDataset) -> None:
    mesh = sample.load_mesh("chair", SAMPLE_MODEL)
    assert mesh.vertices.shape == (814, 3) and mesh.faces.shape == (3304, 3)
    assert mesh.vertex_colors is not None and mesh.vertex_normals is not None
    assert mesh.faces.max() < len(mesh.vertices)
    annotations = sample.annotations("chair")
    assert len(annotations) == 999
    assert sample.annotations(CHAIR) is annotations  # cached per category
    ann = annotations[SAMPLE_MODEL]
    assert ann.semantic_ids.tolist() == [0, 1, 2, 3, 4, 5, 17, 18, 19, 20]
    assert ann.symmetries["reflection"][0] == {"kp_indexes": [0, 1]}
    validate_annotation(ann, n_points=2048, n_faces=len(mesh.faces))
    corners = mesh.vertices[mesh.faces[ann.face_indices]]
    np.testing.assert_allclose(np.einsum("kc,kcd->kd", ann.face_uvs, corners), ann.xyz, atol=1e-9)
    points = sample.load_points("chair", SAMPLE_MODEL)
    np.testing.assert_allclose(points[ann.point_indices], ann.xyz, atol=1e-6)


def test_real_binary_ply(shared_data: Path, tmp_path: Path) -> None:
    mesh = read_ply(shared_data / "bt3d-airplane.ply")
    assert mesh.vertices.shape == (617, 3) and mesh.faces.shape == (1185, 3)
    assert mesh.vertex_colors is not None and mesh.vertex_normals is not None
    write_ply(tmp_path / "a.ply", mesh)
    again = read_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(again.vertices, mesh.vertices)  # float32 values survive
    np.testing.assert_array_equal(again.faces, mesh.faces)
    np.testing.assert_array_equal(again.vertex_colors, mesh.vertex_colors)


def test_real_sample_order_and_split(shared_data: Path) -> None:
    order = read_sample_order(shared_data / "benchmark_indices.csv")
    assert len(order) == 8234
    labelled, test = few_shot_split(order, CHAIR, 3)
    chairs = [m for c, m in order if c == CHAIR]
    assert labelled == chairs[:3] and test == chairs[3:] and len(test) == 996
    assert len(few_shot_split(order, "02691156", 3)[1]) == 1019
    assert len(few_shot_split(order, "04379243", 3)[1]) == 1121


def test_missing_files_lists_absent_shapes(sample: KeypointNetDataset) -> None:
    missing = sample.missing_files(["chair", "table"])
    assert sample.annotation_path("table") in missing
    assert sample.pcd_path(CHAIR, SAMPLE_MODEL) not in missing
    assert sample.mesh_path(CHAIR, SAMPLE_MODEL) not in missing
    assert len(missing) == 1 + 2 * 998  # table.json, then pcd + ply of 998 other chairs


# ---------------------------------------------------------------------------- split


def test_shapes_with_files_and_annotation_order(sample: KeypointNetDataset) -> None:
    # the sample's chair.json annotates 999 chairs; only one has its point cloud and mesh
    order = sample.annotation_order("chair")
    assert len(order) == 999 and order[0][0] == CHAIR
    assert [m for _, m in order] == list(sample.annotations("chair"))
    assert sample.shapes_with_files("chair") == [SAMPLE_MODEL]
    labelled, test = few_shot_split(order, CHAIR, 1, available=sample.shapes_with_files("chair"))
    assert (labelled, test) == ([SAMPLE_MODEL], [])


def test_keypoint_labels_of_the_real_label_table(shared_data: Path, tmp_path: Path) -> None:
    labels = read_keypoint_labels(shared_data / "keypoint_labels.json")
    assert len(labels) == 16 and labels["table"][4] == "end of the table leg"
    root = tmp_path / "kp"
    root.mkdir()
    assert KeypointNetDataset(root).keypoint_labels("chair") == {}  # no file: no labels
    (root / "keypoint_labels.json").write_text((shared_data / "keypoint_labels.json").read_text())
    assert KeypointNetDataset(root).keypoint_labels(CHAIR) == labels["chair"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "expected an object with a 'keypoint_labels' object"),
        ('{"keypoint_labels": {"chair": [1]}}', "keypoint_labels.chair must be an object"),
        ('{"keypoint_labels": {"chair": {"x": "leg"}}}', "expected '<semantic id>': '<text>'"),
        ('{"keypoint_labels": ', "malformed JSON at line 1"),
    ],
)
def test_bad_keypoint_labels(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "keypoint_labels.json"
    path.write_text(content)
    with pytest.raises(DataError, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
        read_keypoint_labels(path)


def test_few_shot_split_offset_max_test_available() -> None:
    order = [(CHAIR, f"m{i}") for i in range(10)] + [("04379243", "t0"), (CHAIR, "m3")]
    assert few_shot_split(order, CHAIR, 2, offset=3) == (
        ["m3", "m4"],
        ["m5", "m6", "m7", "m8", "m9"],
    )
    assert few_shot_split(order, CHAIR, 2, max_test=1) == (["m0", "m1"], ["m2"])
    labelled, test = few_shot_split(order, CHAIR, 2, available={"m1", "m5", "m9"})
    assert labelled == ["m1", "m5"] and test == ["m9"]
    with pytest.raises(DataError, match="class 03001627 has 3 usable shapes, fewer than"):
        few_shot_split(order, CHAIR, 3, offset=1, available={"m1", "m5", "m9"})
    with pytest.raises(ConfigError, match="shots >= 1"):
        few_shot_split(order, CHAIR, 0)


# ------------------------------------------------------------------------ round trips


def test_pcd_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, (100, 3))
    colors = rng.integers(0, 256, (100, 3)).astype(np.uint8)
    write_pcd(tmp_path / "p.pcd", points, colors)
    p, c = read_pcd(tmp_path / "p.pcd")
    np.testing.assert_allclose(p, points, atol=6e-7)
    np.testing.assert_array_equal(c, colors)


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
def test_ply_round_trip(tmp_path: Path, fmt: str) -> None:
    mesh = _tetra()
    write_ply(tmp_path / "m.ply", mesh, fmt=fmt)
    assert f"format {fmt} 1.0".encode() in (tmp_path / "m.ply").read_bytes()[:40]
    again = read_ply(tmp_path / "m.ply")
    np.testing.assert_array_equal(again.vertices, mesh.vertices)
    np.testing.assert_array_equal(again.faces, mesh.faces)
    np.testing.assert_array_equal(again.vertex_colors, mesh.vertex_colors)
    np.testing.assert_allclose(again.vertex_normals, mesh.vertex_normals, atol=1e-7)


def test_ply_quads_are_triangulated_and_alpha_ignored(tmp_path: Path) -> None:
    text = (
        "ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\n"
        "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
        "property uchar alpha\nelement face 2\nproperty list uchar uint vertex_indices\n"
        "end_header\n0 0 0 1 2 3 255\n1 0 0 1 2 3 255\n1 1 0 1 2 3 255\n0 1 0 1 2 3 255\n"
        "0 0 1 1 2 3 255\n4 0 1 2 3\n3 0 1 4\n"
    )
    (tmp_path / "q.ply").write_text(text)
    mesh = read_ply(tmp_path / "q.ply")
    assert sorted(map(tuple, mesh.faces.tolist())) == [(0, 1, 2), (0, 1, 4), (0, 2, 3)]
    assert mesh.vertex_colors[0].tolist() == [1, 2, 3] and mesh.vertex_normals is None


def test_annotations_and_order_round_trip(tmp_path: Path) -> None:
    anns = [_annotation("abc123"), _annotation("def456", k=3)]
    write_annotations(
        tmp_path / "a.json", anns, colors={"abc123": [[1, 2, 3]] * 2, "def456": [[4, 5, 6]] * 3}
    )
    back = read_annotations(tmp_path / "a.json")
    assert [a.model_id for a in back] == ["abc123", "def456"]
    for a, b in zip(anns, back, strict=True):
        for name in ("semantic_ids", "point_indices", "xyz", "face_indices", "face_uvs"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert a.symmetries == b.symmetries
    assert json.loads((tmp_path / "a.json").read_text())[1]["keypoints"][0]["rgb"] == [4, 5, 6]
    order = [(CHAIR, "abc123"), ("04379243", "def456")]
    write_sample_order(tmp_path / "o.csv", order)
    assert read_sample_order(tmp_path / "o.csv") == order


# ------------------------------------------------------------------------ bad inputs

PCD_HEAD = (
    "VERSION .7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F U\nCOUNT 1 1 1 1\nWIDTH 3\n"
    "HEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 3\nDATA ascii\n"
)


def _write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("reader", [read_pcd, read_ply, read_annotations, read_sample_order])
def test_missing_file(tmp_path: Path, reader) -> None:
    with pytest.raises(DataError, match=r"nothere\.x: file not found"):
        reader(tmp_path / "nothere.x")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("0 0 0 1\n1 1 1 2\n", r"truncated PCD: POINTS says 3, found 2 data lines"),
        ("0 0 0 1\n1 1 1 2\n1 2 3 4\n5 5 5 5\n", r"4 data lines but POINTS says 3"),
        ("0 0 0 1\n1 abc 1 2\n1 2 3 4\n", r"line 12: non-numeric value 'abc'"),
        ("0 0 0 1\n1 1 1 2\n1 nan 3 4\n", r"line 13: point 2 is not finite"),
        ("0 0 0 1\n1 inf 1 2\n1 2 3 4\n", r"line 12: point 1 is not finite"),
        ("0 0 0 1\n1 1 1\n1 2 3 4\n", r"line 12: expected 4 values, found 3"),
        ("0 0 0 -1\n1 1 1 2\n1 2 3 4\n", r"line 11: rgb -1.0 is not an unsigned int"),
    ],
)
def test_bad_pcd(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, "bad.pcd", PCD_HEAD + body)
    with pytest.raises(DataError, match=rf"bad\.pcd: .*{message}"):
        read_pcd(path)


def test_wrong_point_count(tmp_path: Path) -> None:
    ds = KeypointNetDataset(tmp_path)
    write_pcd(ds.pcd_path("chair", "m1"), np.zeros((100, 3)))
    with pytest.raises(DataError, match=r"m1\.pcd: expected 2048 points, found 100"):
        ds.load_points("chair", "m1")


def _ply(faces: str, n_faces: int, verts: str = "0 0 0\n1 0 0\n0 1 0\n") -> str:
    return (
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
        f"property float z\nelement face {n_faces}\nproperty list uchar int vertex_indices\n"
        f"end_header\n{verts}{faces}"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_ply("", 0), r"PLY has no faces"),
        (_ply("3 0 1 2\n3 0 1 3\n", 2), r"face 1 has vertex index out of range \[0, 1, 3\]"),
        (_ply("3 0 1 -1\n", 1), r"face 0 has vertex index out of range"),
        (_ply("3 0 1 2\n", 2), r"truncated PLY: element face needs 2 lines, found 1"),
        (_ply("3 0 1 2\n", 1, "0 0 0\n1 nan 0\n0 1 0\n"), r"vertex 1 is not finite"),
        (_ply("3 0 1 2\n", 1, "0 0 0\n1 x 0\n0 1 0\n"), r"non-numeric value 'x'"),
        (_ply("2 0 1\n", 1), r"face with 2 vertices"),
        ("solid stl\n", r"not a PLY file"),
    ],
)
def test_bad_ascii_ply(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, "bad.ply", text)
    with pytest.raises(DataError, match=rf"bad\.ply: .*{message}"):
        read_ply(path)


@pytest.mark.parametrize("cut", [10, 60, 1])
def test_truncated_binary_ply(tmp_path: Path, cut: int) -> None:
    write_ply(tmp_path / "m.ply", _tetra(), fmt="binary_little_endian")
    data = (tmp_path / "m.ply").read_bytes()
    path = _write(tmp_path, "cut.ply", data[:-cut])
    with pytest.raises(DataError, match=r"cut\.ply: truncated binary PLY: the file ends inside"):
        read_ply(path)


def _record(**changes) -> dict:
    kp = {
        "xyz": [0.1, 0.2, 0.3],
        "rgb": [1, 2, 3],
        "semantic_id": 0,
        "pcd_info": {"point_index": 5},
        "mesh_info": {"face_index": 7, "face_uv": [0.2, 0.3, 0.5]},
    }
    kp.update(changes)
    return {"class_id": CHAIR, "model_id": "abc", "keypoints": [kp], "symmetries": {}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"class_id": "03001627",', r"malformed JSON at line 1 column 26"),
        ('{"a": 1}', r"expected a JSON list of records, got dict"),
        ([{"model_id": "abc", "keypoints": []}], r"record 0: missing key 'class_id'"),
        ([_record(xyz=[0, 1])], r"record 0 \(model abc\) keypoint 0: xyz must be a list of 3"),
        ([_record(xyz=[0, "a", 1])], r"keypoint 0: xyz must be a number, got 'a'"),
        ([_record(pcd_info={})], r"keypoint 0: missing key 'point_index'"),
        ([_record(semantic_id=-1)], r"keypoint 0: semantic_id must be in \[0, 2\*\*62\)"),
        ([_record(semantic_id=1.5)], r"keypoint 0: semantic_id must be an integer"),
        ([{**_record(), "class_id": "chair"}], r"record 0: class_id must be an 8-digit"),
    ],
)
def test_bad_annotations(tmp_path: Path, content, message: str) -> None:
    text = content if isinstance(content, str) else json.dumps(content)
    path = _write(tmp_path, "bad.json", text)
    with pytest.raises(DataError, match=rf"bad\.json: .*{message}"):
        read_annotations(path)


def test_a_model_annotated_twice_names_both_records(tmp_path: Path) -> None:
    records = [_record(), {**_record(), "model_id": "x"}, _record()]
    path = _write(tmp_path, "bad.json", json.dumps(records))
    with pytest.raises(
        DataError,
        match=r"bad\.json record 2: model abc is annotated twice \(also "
        r"in .*bad\.json record 0\)",
    ):
        read_annotations(path)


def test_non_finite_annotation_xyz(tmp_path: Path) -> None:
    path = _write(tmp_path, "nan.json", json.dumps([_record(xyz=[0, float("nan"), 1])]))
    with pytest.raises(DataError, match=r"nan\.json: record 0 .* xyz is not finite"):
        read_annotations(path)


def test_keypoint_index_out_of_range(tmp_path: Path) -> None:
    path = _write(tmp_path, "kp.json", json.dumps([_record()]))
    (ann,) = read_annotations(path)
    validate_annotation(ann, n_points=6, n_faces=8)
    with pytest.raises(
        DataError,
        match=r"kp\.json record 0 \(model abc\) keypoint 0: point_index"
        r" 5 out of range for 4 points",
    ):
        validate_annotation(ann, n_points=4)
    with pytest.raises(DataError, match=r"keypoint 0: face_index 7 out of range for 7 faces"):
        validate_annotation(ann, n_points=6, n_faces=7)
    bad = _write(
        tmp_path,
        "uv.json",
        json.dumps([_record(mesh_info={"face_index": 0, "face_uv": [1, 1, 1]})]),
    )
    with pytest.raises(DataError, match=r"face_uv \[1.0, 1.0, 1.0\] is not barycentric"):
        validate_annotation(read_annotations(bad)[0], n_points=6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("class,mesh\n", r"line 1: expected header 'class_id,mesh_id'"),
        ("class_id,mesh_id\n03001627,abc\n03001627\n", r"line 3: expected 2 fields, found 1"),
        ("class_id,mesh_id\nchair,abc\n", r"line 2: class_id 'chair' is not 8 digits"),
        ("class_id,mesh_id\n03001627,a b\n", r"line 2: invalid model id 'a b'"),
    ],
)
def test_bad_sample_order(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, "bad.csv", text)
    with pytest.raises(DataError, match=rf"bad\.csv: {message}"):
        read_sample_order(path)


def test_annotation_class_mismatch(tmp_path: Path) -> None:
    ds = KeypointNetDataset(tmp_path)
    write_annotations(ds.annotation_path("table"), [_annotation("abc")])
    with pytest.raises(DataError, match=r"table\.json record 0: model abc has class_id 03001627"):
        ds.annotations("table")


# ------------------------------------------------------------------------- binary PCD


def _lzf_compress(data: bytes) -> bytes:
    """A greedy LZF compressor (liblzf's format: literal runs and back references)."""
    out, literal, last, i = bytearray(), bytearray(), {}, 0

    def flush() -> None:
        for k in range(0, len(literal), 32):
            chunk = literal[k : k + 32]
            out.extend([len(chunk) - 1, *chunk])
        literal.clear()

    while i < len(data):
        ref = last.get(data[i : i + 3], -1) if i + 3 <= len(data) else -1
        if i + 3 <= len(data):
            last[data[i : i + 3]] = i
        if ref >= 0 and i - ref - 1 < 8192:
            length = 3
            while (
                i + length < len(data) and length < 264 and data[ref + length] == data[i + length]
            ):
                length += 1
            flush()
            off, n = i - ref - 1, length - 2
            if n < 7:
                out.extend([(n << 5) | (off >> 8), off & 255])
            else:
                out.extend([(7 << 5) | (off >> 8), n - 7, off & 255])
            i += length
        else:
            literal.append(data[i])
            i += 1
    flush()
    return bytes(out)


def _pcl_style(points: np.ndarray, colors: np.ndarray, kind: str) -> bytes:
    """A PCD as PCL writes it: a 4-byte ``_`` padding field, rgb as float32 bits, normals."""
    n = len(points)
    record = np.dtype(
        [
            ("x", "<f4"),
            ("y", "<f4"),
            ("z", "<f4"),
            ("_", "u1", (4,)),
            ("rgb", "<f4"),
            ("normal_x", "<f8"),
        ]  # fmt: skip
    )
    rows = np.zeros(n, dtype=record)
    rows["x"], rows["y"], rows["z"] = points.T
    packed = (colors.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32)).astype("<u4")
    rows["rgb"] = packed.view("<f4")
    rows["normal_x"] = 1.0
    head = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        "FIELDS x y z _ rgb normal_x\nSIZE 4 4 4 1 4 8\nTYPE F F F U F F\nCOUNT 1 1 1 4 1 1\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {kind}\n"
    ).encode()
    if kind == "binary":
        return head + rows.tobytes()
    columns = b"".join(rows[name].tobytes() for name in record.names)
    packed_bytes = _lzf_compress(columns)
    assert len(packed_bytes) < len(columns)  # back references were used
    return head + np.array([len(packed_bytes), len(columns)], "<u4").tobytes() + packed_bytes


def test_binary_pcd_written_and_read_matches_the_ascii_file(
    sample: KeypointNetDataset, tmp_path: Path
) -> None:
    points, colors = read_pcd(sample.pcd_path(CHAIR, SAMPLE_MODEL))
    write_pcd(tmp_path / "b.pcd", points, colors, fmt="binary")
    back, back_colors = read_pcd(tmp_path / "b.pcd")
    np.testing.assert_array_equal(back, points)
    np.testing.assert_array_equal(back_colors, colors)
    assert (tmp_path / "b.pcd").read_bytes().count(b"DATA binary\n") == 1


@pytest.mark.parametrize("kind", ["binary", "binary_compressed"])
def test_pcl_binary_pcd_is_read_like_its_ascii_version(
    sample: KeypointNetDataset, tmp_path: Path, kind: str
) -> None:
    points, colors = read_pcd(sample.pcd_path(CHAIR, SAMPLE_MODEL))
    colors[::2] = (200, 100, 7)  # the sample is grey: make the channels differ
    write_pcd(tmp_path / "a.pcd", points, colors)
    path = _write(tmp_path, "b.pcd", _pcl_style(points, colors, kind))
    ascii_points, ascii_colors = read_pcd(tmp_path / "a.pcd")
    back, back_colors = read_pcd(path)
    assert back.shape == (2048, 3) and back.dtype == np.float32
    np.testing.assert_allclose(back, ascii_points, atol=5e-7)
    np.testing.assert_array_equal(back_colors, ascii_colors)


def test_lzf_test_compressor_uses_back_references() -> None:
    data = bytes(range(40)) * 20 + b"\0" * 500
    packed = _lzf_compress(data)
    assert len(packed) < len(data) // 4
    from bt3d.io.pcd import _lzf_decompress

    assert _lzf_decompress(Path("x.pcd"), packed, len(data)) == data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda b: b[:-10],
            r"truncated PCD: POINTS 3 x 28 bytes = 84 bytes of binary data, found 74",
        ),
        (
            lambda b: b.replace(b"DATA binary", b"DATA ascii"),
            r"DATA ascii but the data is not UTF-8 text",
        ),
        (lambda b: b.replace(b"DATA binary", b"DATA zipped"), r"unknown PCD DATA \['zipped'\]"),
        (
            lambda b: b.replace(b"SIZE 4 4 4 1 4 8", b"SIZE 4 4 4 1 4"),
            r"PCD header has 6 FIELDS but 5 SIZE",
        ),
        (lambda b: b.replace(b"COUNT 1 1 1 4", b"COUNT 2 1 1 4"), r"PCD field x must have COUNT 1"),
    ],
)
def test_bad_binary_pcd(tmp_path: Path, edit, message: str) -> None:  # noqa: ANN001
    data = _pcl_style(np.arange(9.0).reshape(3, 3), np.full((3, 3), 255), "binary")
    path = _write(tmp_path, "bad.pcd", edit(data))
    with pytest.raises(DataError, match=rf"bad\.pcd: {message}"):
        read_pcd(path)


def test_corrupt_compressed_pcd(tmp_path: Path) -> None:
    data = _pcl_style(np.arange(9.0).reshape(3, 3), np.full((3, 3), 255), "binary_compressed")
    path = _write(tmp_path, "bad.pcd", data[:-3])
    with pytest.raises(DataError, match=r"bad\.pcd: truncated PCD: \d+ compressed bytes"):
        read_pcd(path)
    head, _, body = data.partition(b"DATA binary_compressed\n")
    sizes, stream = body[:8], bytearray(body[8:])
    stream[0] = 0xE0  # a back reference before any output
    path = _write(tmp_path, "bad.pcd", head + b"DATA binary_compressed\n" + sizes + stream)
    with pytest.raises(DataError, match=r"bad\.pcd: corrupt binary_compressed PCD data"):
        read_pcd(path)
