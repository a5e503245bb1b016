"""PLY triangle meshes (ASCII and binary little/big endian, vertex colours and normals
optional), and the check that a mesh has a surface to render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bt3d.atomic import write_bytes_atomic
from bt3d.errors import ConfigError, DataError
from bt3d.io.text import check_finite, parse_numbers, read_bytes, token_counts
from bt3d.structures import Mesh

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_PLY_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}


class _Element:
    """One ``element`` of a PLY header: name, count and its properties."""

    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.count = count
        # (name, scalar dtype code, list-count dtype code or None)
        self.properties: list[tuple[str, str, str | None]] = []

    @property
    def has_list(self) -> bool:
        return any(p[2] is not None for p in self.properties)


def _ply_header(path: Path, data: bytes) -> tuple[str, list[_Element], int]:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise DataError(f"{path}: not a PLY file (no 'ply' magic or no end_header)")
    newline = data.find(b"\n", end)
    if newline < 0:
        raise DataError(f"{path}: PLY header is not terminated by a newline")
    try:
        text = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise DataError(f"{path}: PLY header is not ASCII") from None
    fmt = None
    elements: list[_Element] = []
    for number, raw in enumerate(text.splitlines()[1:], start=2):
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        where = f"{path}: header line {number}"
        if words[0] == "format":
            if len(words) != 3 or words[1] not in _PLY_FORMATS:
                raise DataError(f"{where}: unsupported format {raw.strip()!r}")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise DataError(f"{where}: malformed element line {raw.strip()!r}")
            elements.append(_Element(words[1], int(words[2])))
        elif words[0] == "property":
            if not elements:
                raise DataError(f"{where}: property before any element")
            if len(words) in (3, 5) and words[-1] in [p[0] for p in elements[-1].properties]:
                raise DataError(f"{where}: duplicate property {words[-1]!r}")
            if len(words) == 5 and words[1] == "list":
                if words[2] not in _PLY_TYPES or words[3] not in _PLY_TYPES:
                    raise DataError(f"{where}: unknown list types in {raw.strip()!r}")
                if _PLY_TYPES[words[2]][0] == "f":
                    raise DataError(f"{where}: list count type must be an integer type")
                elements[-1].properties.append(
                    (words[4], _PLY_TYPES[words[3]], _PLY_TYPES[words[2]])
                )
            elif len(words) == 3 and words[1] in _PLY_TYPES:
                elements[-1].properties.append((words[2], _PLY_TYPES[words[1]], None))
            else:
                raise DataError(f"{where}: malformed property line {raw.strip()!r}")
        else:
            raise DataError(f"{where}: unknown header keyword {words[0]!r}")
    if fmt is None:
        raise DataError(f"{path}: PLY header has no format line")
    return fmt, elements, newline + 1


def _ascii_element(
    path: Path, element: _Element, lines: list[str], first_line: int
) -> dict[str, Any]:
    """Parse ``element.count`` ASCII lines -> property name -> (count,) array or list of rows."""
    if len(lines) < element.count:
        raise DataError(
            f"{path}: truncated PLY: element {element.name} needs {element.count} lines, "
            f"found {len(lines)}"
        )
    if not element.has_list:
        values = parse_numbers(path, lines, first_line, len(element.properties))
        out = {}
        for i, (name, dtype, _count) in enumerate(element.properties):
            # declared float32 values keep float32 precision, as in a binary file
            with np.errstate(over="ignore"):  # out-of-range values become inf, caught later
                out[name] = values[:, i].astype(np.float32) if dtype == "f4" else values[:, i]
        return out
    widths = token_counts("\n".join(lines), len(lines))
    if len(widths) and (widths == widths[0]).all():
        values = parse_numbers(path, lines, first_line, int(widths[0]))
        return _split_list_rows(path, element, values, first_line)
    out: dict[str, Any] = {p[0]: [] for p in element.properties}
    for i, line in enumerate(lines):
        values = parse_numbers(path, [line], first_line + i, len(line.split()))[0]
        for name, row in _split_list_rows(path, element, values[None], first_line + i).items():
            out[name].append(row[0])
    return out


def _split_list_rows(
    path: Path, element: _Element, values: np.ndarray, first_line: int
) -> dict[str, Any]:
    """Split (R, W) numeric rows of equal width into the element's properties.

    List properties become (R, k) arrays; every row must have the same list lengths.
    """
    out: dict[str, Any] = {}
    col = 0
    for name, _dtype, count_type in element.properties:
        if col >= values.shape[1]:
            raise DataError(f"{path}: line {first_line}: element {element.name} row is too short")
        if count_type is None:
            out[name] = values[:, col]
            col += 1
            continue
        k = values[:, col]
        if not (k == k[0]).all() or not (np.isfinite(k[0]) and 0 <= k[0] == int(k[0])):
            raise DataError(f"{path}: line {first_line}: bad list length in {element.name}")
        k0 = int(k[0])
        out[name] = values[:, col + 1 : col + 1 + k0]
        if out[name].shape[1] != k0:
            raise DataError(f"{path}: line {first_line}: {element.name} list is truncated")
        col += 1 + k0
    if col != values.shape[1]:
        raise DataError(
            f"{path}: line {first_line}: element {element.name} row has {values.shape[1]} "
            f"values, expected {col}"
        )
    return out


def _binary_element(
    path: Path, element: _Element, data: bytes, offset: int, order: str
) -> tuple[dict[str, Any], int]:
    """Parse a binary element starting at byte ``offset``; returns (properties, new offset)."""
    if element.count == 0:
        return {p[0]: np.zeros(0) for p in element.properties}, offset
    if not element.properties:
        raise DataError(f"{path}: PLY element {element.name!r} has no properties")
    if not element.has_list:
        dtype = np.dtype([(p[0], order + p[1]) for p in element.properties])
        rows = _frombuffer(path, element, data, offset, dtype)
        return {p[0]: rows[p[0]] for p in element.properties}, offset + rows.nbytes
    # Fast path: every list has the length found in the first row.
    fields: list[tuple[Any, ...]] = []
    pos = offset
    for name, dtype, count_type in element.properties:
        if count_type is None:
            fields.append((name, order + dtype))
            pos += np.dtype(dtype).itemsize
            continue
        size = np.dtype(count_type).itemsize
        if pos + size > len(data):
            raise _truncated(path, element)
        k = int(np.frombuffer(data, order + count_type, 1, pos)[0])
        if k < 0:
            raise DataError(f"{path}: PLY element {element.name!r} has a negative list length")
        if k == 0:
            return _binary_element_slow(path, element, data, offset, order)
        fields += [(f"{name}__count", order + count_type), (name, order + dtype, (k,))]
        pos += size + np.dtype(dtype).itemsize * k
    rows_dtype = np.dtype(fields)
    if offset + rows_dtype.itemsize * element.count <= len(data):
        rows = np.frombuffer(data, rows_dtype, element.count, offset)
        lists = [p[0] for p in element.properties if p[2] is not None]
        if all((rows[f"{n}__count"] == rows[f"{n}__count"][0]).all() for n in lists):
            out = {p[0]: rows[p[0]] for p in element.properties}
            return out, offset + rows_dtype.itemsize * element.count
    return _binary_element_slow(path, element, data, offset, order)


def _frombuffer(
    path: Path, element: _Element, data: bytes, offset: int, dtype: np.dtype
) -> np.ndarray:
    if offset + dtype.itemsize * element.count > len(data):
        raise _truncated(path, element)
    return np.frombuffer(data, dtype, element.count, offset)


def _truncated(path: Path, element: _Element) -> DataError:
    return DataError(
        f"{path}: truncated binary PLY: the file ends inside element {element.name!r} "
        f"({element.count} declared)"
    )


def _binary_element_slow(
    path: Path, element: _Element, data: bytes, offset: int, order: str
) -> tuple[dict[str, Any], int]:
    """Row-by-row parse of a binary element whose list lengths vary."""
    out: dict[str, Any] = {p[0]: [] for p in element.properties}
    for _ in range(element.count):
        for name, dtype, count_type in element.properties:
            if count_type is None:
                k, item = 1, dtype
            else:
                size = np.dtype(count_type).itemsize
                if offset + size > len(data):
                    raise _truncated(path, element)
                k = int(np.frombuffer(data, order + count_type, 1, offset)[0])
                if k < 0:
                    raise DataError(
                        f"{path}: PLY element {element.name!r} has a negative list length"
                    )
                offset += size
                item = dtype
            nbytes = np.dtype(item).itemsize * k
            if offset + nbytes > len(data):
                raise _truncated(path, element)
            values = np.frombuffer(data, order + item, k, offset)
            offset += nbytes
            out[name].append(values[0] if count_type is None else values)
    for name, _d, count_type in element.properties:
        if count_type is None:
            out[name] = np.array(out[name])
    return out, offset


def _triangulate(path: Path, polygons: Any) -> np.ndarray:
    """(F, k) array or list of index rows -> (T, 3) int64 triangles by fan triangulation."""
    if isinstance(polygons, np.ndarray) and polygons.ndim == 2:
        rows = [polygons]
    else:
        by_len: dict[int, list[np.ndarray]] = {}
        for row in polygons:
            by_len.setdefault(len(row), []).append(np.asarray(row))
        rows = [np.stack(v) for v in by_len.values()]
    tris = []
    for block in rows:
        k = block.shape[1]
        if k < 3:
            raise DataError(f"{path}: face with {k} vertices (a polygon needs at least 3)")
        for j in range(1, k - 1):
            tris.append(block[:, [0, j, j + 1]])
    faces = np.concatenate(tris)
    if not np.isfinite(faces).all() or (faces != np.round(faces)).any():
        raise DataError(f"{path}: face indices must be integers")
    return faces.astype(np.int64)


def read_ply(path: str | Path) -> Mesh:
    """Read a PLY triangle mesh (ASCII, binary little or big endian).

    Vertex normals (``nx ny nz``) and colours (``red green blue``, alpha ignored) are read
    when present. Polygons are fan-triangulated.

    Returns:
        Mesh with vertices (V, 3) float64, faces (F, 3) int64, vertex_colors (V, 3) uint8 or
        None, vertex_normals (V, 3) float64 or None.
    """
    path = Path(path)
    data = read_bytes(path)
    fmt, elements, offset = _ply_header(path, data)
    parsed: dict[str, dict[str, Any]] = {}
    if fmt == "ascii":
        try:
            text = data[offset:].decode("ascii")
        except UnicodeDecodeError:
            raise DataError(f"{path}: ASCII PLY body contains non-ASCII bytes") from None
        header_lines = data[:offset].count(b"\n")
        lines = [line for line in text.splitlines() if line.strip()]
        row = 0
        for element in elements:
            chunk = lines[row : row + element.count]
            parsed[element.name] = _ascii_element(path, element, chunk, header_lines + row + 1)
            row += element.count
    else:
        for element in elements:
            parsed[element.name], offset = _binary_element(
                path, element, data, offset, _PLY_FORMATS[fmt]
            )
    _check_kinds(path, elements)
    with np.errstate(invalid="ignore", over="ignore"):  # bad values are reported below
        return _mesh_from_elements(path, parsed)


def _check_kinds(path: Path, elements: list[_Element]) -> None:
    """Vertex attributes must be scalar properties, face indices a list property."""
    for element in elements:
        for name, _dtype, count_type in element.properties:
            if element.name == "vertex" and count_type is not None:
                raise DataError(f"{path}: PLY vertex property {name!r} must not be a list")
            if element.name == "face" and name in ("vertex_indices", "vertex_index"):
                if count_type is None:
                    raise DataError(f"{path}: PLY face property {name!r} must be a list")


def _mesh_from_elements(path: Path, parsed: dict[str, dict[str, Any]]) -> Mesh:
    vertex = parsed.get("vertex")
    if vertex is None or not {"x", "y", "z"} <= set(vertex):
        raise DataError(f"{path}: PLY has no vertex element with x, y, z")
    vertices = np.stack([np.asarray(vertex[a], dtype=np.float64) for a in "xyz"], axis=1)
    if len(vertices) == 0:
        raise DataError(f"{path}: PLY has no vertices")
    check_finite(path, vertices, None, "vertex")
    face = parsed.get("face", {})
    key = "vertex_indices" if "vertex_indices" in face else "vertex_index"
    if key not in face or len(face[key]) == 0:
        raise DataError(f"{path}: PLY has no faces (a triangle mesh is required)")
    faces = _triangulate(path, face[key])
    if faces.min() < 0 or faces.max() >= len(vertices):
        bad = int(np.flatnonzero((faces < 0).any(1) | (faces >= len(vertices)).any(1))[0])
        raise DataError(
            f"{path}: face {bad} has vertex index out of range {faces[bad].tolist()} "
            f"(the mesh has {len(vertices)} vertices)"
        )
    normals = None
    if {"nx", "ny", "nz"} <= set(vertex):
        normals = np.stack([np.asarray(vertex[a], dtype=np.float64) for a in ("nx", "ny", "nz")], 1)
        if not np.isfinite(normals).all():
            raise DataError(f"{path}: PLY vertex normals contain NaN or inf")
    colors = None
    if {"red", "green", "blue"} <= set(vertex):
        c = np.stack([np.asarray(vertex[a], dtype=np.float64) for a in ("red", "green", "blue")], 1)
        if not np.isfinite(c).all():
            raise DataError(f"{path}: PLY vertex colours contain NaN or inf")
        colors = np.clip(np.round(c), 0, 255).astype(np.uint8)
    return Mesh(vertices, faces, colors, normals, source=str(path))


def write_ply(path: str | Path, mesh: Mesh, fmt: str = "ascii") -> None:
    """Write ``mesh`` as PLY with float32 vertices, normals and uchar colours when present.

    Args:
        fmt: ``ascii`` (KeypointNet style, the default), ``binary_little_endian`` or
            ``binary_big_endian``.
    """
    if fmt not in _PLY_FORMATS:
        raise ConfigError(f"unknown PLY format {fmt!r}; expected one of {list(_PLY_FORMATS)}")
    order = _PLY_FORMATS[fmt] or "<"
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if mesh.vertex_normals is not None:
        fields += [("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
    if mesh.vertex_colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertex = np.empty(len(mesh.vertices), np.dtype([(n, order + t) for n, t in fields]))
    for i, axis in enumerate("xyz"):
        vertex[axis] = mesh.vertices[:, i]
    if mesh.vertex_normals is not None:
        for i, axis in enumerate(("nx", "ny", "nz")):
            vertex[axis] = mesh.vertex_normals[:, i]
    if mesh.vertex_colors is not None:
        for i, axis in enumerate(("red", "green", "blue")):
            vertex[axis] = mesh.vertex_colors[:, i]
    names = {"f4": "float", "u1": "uchar"}
    header = [f"ply\nformat {fmt} 1.0\nelement vertex {len(vertex)}\n"]
    header += [f"property {names[t]} {n}\n" for n, t in fields]
    header.append(
        f"element face {len(mesh.faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    head = "".join(header).encode()
    if fmt == "ascii":
        vcols = [vertex[n].astype(np.float64) for n, _ in fields]
        vfmt = " ".join("%.9g" if t == "f4" else "%d" for _, t in fields)
        body = "".join(vfmt % row + "\n" for row in zip(*(c.tolist() for c in vcols), strict=True))
        body += "".join(f"3 {a} {b} {c}\n" for a, b, c in mesh.faces.tolist())
        write_bytes_atomic(path, head + body.encode())
        return
    faces = np.empty(len(mesh.faces), np.dtype([("k", "u1"), ("idx", order + "i4", (3,))]))
    faces["k"] = 3
    faces["idx"] = mesh.faces
    write_bytes_atomic(path, head + vertex.tobytes() + faces.tobytes())


def check_surface(mesh: Mesh) -> None:
    """DataError naming ``mesh.source`` when it cannot be rendered: a flat-zero bounding box
    or every face of zero area (all vertices coincident or collinear)."""
    v = mesh.vertices
    extent = float(np.linalg.norm(v.max(axis=0) - v.min(axis=0)))
    if not extent > 0:
        raise DataError(f"{mesh.source}: degenerate mesh: all {len(v)} vertices coincide")
    tri = v[mesh.faces]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if not (area > 1e-12 * extent**2).any():
        raise DataError(
            f"{mesh.source}: degenerate mesh: all {len(mesh.faces)} faces have zero area"
        )
