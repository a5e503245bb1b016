"""Readers and writers for the KeypointNet layout: PCD point clouds, PLY meshes, annotations.

Layout under a dataset root (as KeypointNet ships it)::

    annotations/<category>.json
    pcds/<class_id>/<model_id>.pcd
    ShapeNetCore.v2.ply/<class_id>/<model_id>.ply
    benchmark_indices.csv            (Back to 3D's sample order, ``class_id,mesh_id``)
    keypoint_labels.json             (optional: a text label per category and semantic id)

The parsers are small and strict: every malformed input raises :class:`DataError` whose
message names the file (and the line or record) and the problem.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bt3d.atomic import write_bytes_atomic
from bt3d.errors import ConfigError, DataError
from bt3d.structures import Mesh, ShapeAnnotation

CATEGORY_IDS: dict[str, str] = {
    "airplane": "02691156",
    "bathtub": "02808440",
    "bed": "02818832",
    "bottle": "02876657",
    "cap": "02954340",
    "car": "02958343",
    "chair": "03001627",
    "guitar": "03467517",
    "helmet": "03513137",
    "knife": "03624134",
    "laptop": "03642806",
    "motorcycle": "03790512",
    "mug": "03797390",
    "skateboard": "04225987",
    "table": "04379243",
    "vessel": "04530566",
}
_CATEGORY_NAMES = {v: k for k, v in CATEGORY_IDS.items()}
_CLASS_ID_RE = re.compile(r"^[0-9]{8}$")
_MODEL_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def class_id_of(name: str) -> str:
    """ShapeNet synset id of a KeypointNet category name (a class id is returned unchanged)."""
    if name in CATEGORY_IDS:
        return CATEGORY_IDS[name]
    if name in _CATEGORY_NAMES:
        return name
    raise ConfigError(f"unknown category {name!r}; known: {', '.join(CATEGORY_IDS)}")


def category_of(class_id: str) -> str:
    """KeypointNet category name of a ShapeNet synset id (a name is returned unchanged)."""
    if class_id in _CATEGORY_NAMES:
        return _CATEGORY_NAMES[class_id]
    if class_id in CATEGORY_IDS:
        return class_id
    known = ", ".join(f"{k} ({v})" for k, v in CATEGORY_IDS.items())
    raise ConfigError(f"unknown class id {class_id!r}; known: {known}")


def _read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _read_text(path: str | Path) -> str:
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _read_json(path: Path) -> Any:
    """The parsed JSON content of ``path``; DataError naming the file and the position."""
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None


def _token_counts(text: str, n_lines: int) -> np.ndarray:
    """(n_lines,) number of whitespace-separated tokens on each line of ``text``."""
    data = np.frombuffer(text.encode("utf-8", "replace"), dtype=np.uint8)
    space = (data == 32) | ((data >= 9) & (data <= 13))
    starts = np.flatnonzero(~space & np.concatenate([[True], space[:-1]]))
    line = np.searchsorted(np.flatnonzero(data == 10), starts)
    return np.bincount(line, minlength=n_lines)[:n_lines]


def _parse_numbers(path: Path, lines: list[str], first_line: int, width: int) -> np.ndarray:
    """Parse ``lines`` of ``width`` numbers each into a (len(lines), width) float64 array.

    ``first_line`` is the 1-based file line number of ``lines[0]``, for error messages.
    """
    if not lines:
        return np.zeros((0, width))
    text = "\n".join(lines)
    counts = _token_counts(text, len(lines))
    wrong = np.flatnonzero(counts != width)
    if len(wrong):
        i = int(wrong[0])
        found = len(lines[i].split())
        raise DataError(f"{path}: line {first_line + i}: expected {width} values, found {found}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            values = np.fromstring(text, dtype=np.float64, sep=" ")
    except ValueError:
        values = np.zeros(0)
    if values.size == len(lines) * width and all(len(line.split()) == width for line in lines[:1]):
        return values.reshape(len(lines), width)
    for i, line in enumerate(lines):
        for token in line.split():
            try:
                float(token)
            except ValueError:
                raise DataError(
                    f"{path}: line {first_line + i}: non-numeric value {token[:40]!r}"
                ) from None
    raise DataError(
        f"{path}: lines {first_line}-{first_line + len(lines) - 1}: values that cannot be "
        "parsed as numbers"
    )


def _check_finite(path: Path, values: np.ndarray, first_line: int | None, what: str) -> None:
    """DataError at the first non-finite row; ``first_line`` None: no line numbers (PLY)."""
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        where = f"{path}: " if first_line is None else f"{path}: line {first_line + row}: "
        raise DataError(f"{where}{what} {row} is not finite {values[row].tolist()}")


# --------------------------------------------------------------------------------------- PCD


_PCD_TYPES = {"F": "f", "U": "u", "I": "i"}
_PCD_DATA = ("ascii", "binary", "binary_compressed")


def _pcd_header(path: Path, data: bytes) -> tuple[dict[str, list[str]], int, bytes]:
    """Header keywords -> values, the number of header lines, and the bytes after ``DATA``."""
    header: dict[str, list[str]] = {}
    pos = 0
    for i in range(66):
        end = data.find(b"\n", pos)
        raw, pos = (data[pos:], len(data)) if end < 0 else (data[pos:end], end + 1)
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            break
        if line and not line.startswith("#"):
            key, *values = line.split()
            header[key.upper()] = values
            if key.upper() == "DATA":
                return header, i + 1, data[pos:]
        if end < 0:
            break
    raise DataError(f"{path}: not a PCD file (no DATA line in the header)")


def read_pcd(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a PCD point cloud (KeypointNet: fields ``x y z rgb``), ASCII or binary.

    ``DATA ascii``, ``binary`` (little-endian records of the header's FIELDS/SIZE/TYPE/COUNT)
    and ``binary_compressed`` (LZF, one column after another, as PCL writes it) are read.

    Returns:
        points: (N, 3) float32 positions.
        colors: (N, 3) uint8 RGB unpacked from the ``rgb`` field (zeros when absent).
    """
    path = Path(path)
    header, start, body = _pcd_header(path, _read_bytes(path))
    fields = header.get("FIELDS", [])
    if not {"x", "y", "z"} <= set(fields):
        raise DataError(f"{path}: PCD FIELDS must include x y z, got {fields}")
    kind = header["DATA"][0].lower() if header["DATA"] else ""
    if kind not in _PCD_DATA:
        raise DataError(f"{path}: unknown PCD DATA {header['DATA']}; expected one of {_PCD_DATA}")
    counts = header.get("COUNT", ["1"] * len(fields))
    types = header.get("TYPE", ["F"] * len(fields))
    if len(types) != len(fields):
        raise DataError(f"{path}: PCD header has {len(fields)} FIELDS but {len(types)} TYPE")
    if len(counts) != len(fields):
        raise DataError(f"{path}: PCD header has {len(fields)} FIELDS but {len(counts)} COUNT")
    try:
        n = int(header["POINTS"][0])
    except (KeyError, IndexError, ValueError):
        raise DataError(f"{path}: PCD header lacks a valid POINTS count") from None
    if n < 0:
        raise DataError(f"{path}: PCD header has a negative POINTS count {n}")
    if kind == "ascii":
        return _ascii_pcd(path, body, start, n, fields, types, counts)
    columns = _binary_pcd(path, header, body, n, fields, types, counts, kind)
    xyz = np.stack([columns[a].reshape(n).astype(np.float64) for a in "xyz"], axis=1)
    _check_finite(path, xyz, None, "point")
    colors = np.zeros((n, 3), dtype=np.uint8)
    rgb = "rgb" if "rgb" in fields else "rgba" if "rgba" in fields else None
    if rgb is not None:
        bits = np.ascontiguousarray(columns[rgb].reshape(n))
        if bits.dtype.itemsize != 4:
            raise DataError(f"{path}: PCD field {rgb} must have SIZE 4, got {bits.dtype.itemsize}")
        colors = _rgb_channels(bits.view(np.uint32))
    return xyz.astype(np.float32), colors


def _ascii_pcd(
    path: Path,
    body: bytes,
    start: int,
    n: int,
    fields: list[str],
    types: list[str],
    counts: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of an ASCII PCD; ``start``: the number of header lines (for line numbers)."""
    try:
        lines = body.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: DATA ascii but the data is not UTF-8 text (byte {exc.start} after the "
            "header); is it a binary PCD with a wrong DATA line?"
        ) from None
    if any(c != "1" for c in counts):
        raise DataError(f"{path}: PCD fields with COUNT other than 1 are not supported: {counts}")
    data = [line for line in lines if line.strip()]
    if len(data) < n:
        raise DataError(f"{path}: truncated PCD: POINTS says {n}, found {len(data)} data lines")
    if len(data) > n:
        raise DataError(f"{path}: PCD has {len(data)} data lines but POINTS says {n}")
    values = _parse_numbers(path, data, start + 1, len(fields))
    cols = [fields.index(a) for a in "xyz"]
    xyz = values[:, cols]
    _check_finite(path, xyz, start + 1, "point")
    colors = np.zeros((n, 3), dtype=np.uint8)
    if "rgb" in fields or "rgba" in fields:
        c = fields.index("rgb" if "rgb" in fields else "rgba")
        colors = _unpack_rgb(path, values[:, c], types[c], start + 1)
    return xyz.astype(np.float32), colors


def _pcd_dtype(
    path: Path, header: dict[str, list[str]], fields: list[str], types: list[str], counts: list[str]
) -> np.dtype:
    """The little-endian record of a binary PCD from its FIELDS, SIZE, TYPE and COUNT."""
    sizes = header.get("SIZE", [])
    if len(sizes) != len(fields):
        raise DataError(f"{path}: PCD header has {len(fields)} FIELDS but {len(sizes)} SIZE")
    parts = []
    for i, (name, size, type_, count) in enumerate(zip(fields, sizes, types, counts, strict=True)):
        kind = _PCD_TYPES.get(type_.upper())
        if kind is None or size not in ("1", "2", "4", "8") or (kind == "f" and size in "12"):
            raise DataError(f"{path}: PCD field {name} has unsupported TYPE {type_} SIZE {size}")
        if not count.isdigit() or int(count) < 1:
            raise DataError(f"{path}: PCD field {name} has invalid COUNT {count}")
        if name in ("x", "y", "z", "rgb", "rgba") and count != "1":
            raise DataError(f"{path}: PCD field {name} must have COUNT 1, got {count}")
        unique = name if name not in fields[:i] else f"{name}#{i}"  # PCL pads with "_" fields
        parts.append((unique, f"<{kind}{size}", (int(count),)))
    return np.dtype(parts)


def _binary_pcd(
    path: Path,
    header: dict[str, list[str]],
    body: bytes,
    n: int,
    fields: list[str],
    types: list[str],
    counts: list[str],
    kind: str,
) -> dict[str, np.ndarray]:
    """Field name -> (N, COUNT) column of a ``binary`` or ``binary_compressed`` PCD."""
    record = _pcd_dtype(path, header, fields, types, counts)
    expected = n * record.itemsize
    if kind == "binary":
        if len(body) < expected:
            raise DataError(
                f"{path}: truncated PCD: POINTS {n} x {record.itemsize} bytes = {expected} "
                f"bytes of binary data, found {len(body)}"
            )
        rows = np.frombuffer(body, dtype=record, count=n)
        return {name: rows[name] for name in fields if name in record.names}
    if len(body) < 8:
        raise DataError(f"{path}: truncated PCD: binary_compressed data without its sizes")
    packed, unpacked = (int(v) for v in np.frombuffer(body[:8], dtype="<u4"))
    if unpacked != expected:
        raise DataError(
            f"{path}: binary_compressed PCD holds {unpacked} bytes, but POINTS {n} x "
            f"{record.itemsize} bytes = {expected}"
        )
    if len(body) - 8 < packed:
        raise DataError(
            f"{path}: truncated PCD: {packed} compressed bytes announced, found {len(body) - 8}"
        )
    raw = _lzf_decompress(path, body[8 : 8 + packed], unpacked)
    columns, offset = {}, 0
    for name in record.names:  # one field after another, all points each
        sub = record.fields[name][0]
        size = n * sub.itemsize
        columns[name] = np.frombuffer(raw[offset : offset + size], dtype=sub.base).reshape(
            n, *sub.shape
        )
        offset += size
    return columns


def _lzf_decompress(path: Path, src: bytes, size: int) -> bytes:
    """LZF (liblzf, as PCL's binary_compressed uses) -> exactly ``size`` bytes."""
    out = bytearray()
    i, end = 0, len(src)
    try:
        while i < end:
            ctrl = src[i]
            i += 1
            if ctrl < 32:  # a run of ctrl + 1 literal bytes
                if i + ctrl + 1 > end:
                    raise IndexError
                out += src[i : i + ctrl + 1]
                i += ctrl + 1
                continue
            length = ctrl >> 5  # a back reference of length + 2 bytes
            if length == 7:
                length += src[i]
                i += 1
            ref = len(out) - ((ctrl & 0x1F) << 8) - src[i] - 1
            i += 1
            length += 2
            if ref < 0:
                raise IndexError
            if ref + length <= len(out):
                out += out[ref : ref + length]
            else:  # overlapping copy: byte by byte
                for k in range(length):
                    out.append(out[ref + k])
    except IndexError:
        raise DataError(f"{path}: corrupt binary_compressed PCD data (bad LZF stream)") from None
    if len(out) != size:
        raise DataError(
            f"{path}: corrupt binary_compressed PCD data: {len(out)} bytes, expected {size}"
        )
    return bytes(out)


def _rgb_channels(bits: np.ndarray) -> np.ndarray:
    """(N,) uint32 packed 0x..RRGGBB -> (N, 3) uint8."""
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=1).astype(np.uint8)


def _unpack_rgb(path: Path, packed: np.ndarray, type_: str, first_line: int) -> np.ndarray:
    """(N,) packed 0xRRGGBB values (unsigned ints, or float32 bit patterns) -> (N, 3) uint8."""
    if type_.upper() == "F":
        bits = packed.astype(np.float32).view(np.uint32)
    else:
        ok = np.isfinite(packed) & (packed >= 0) & (packed < 2**32) & (packed == np.round(packed))
        if not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            raise DataError(
                f"{path}: line {first_line + row}: rgb {float(packed[row])} is not an unsigned int"
            )
        bits = packed.astype(np.uint32)
    return _rgb_channels(bits)


def write_pcd(
    path: str | Path, points: np.ndarray, colors: np.ndarray | None = None, fmt: str = "ascii"
) -> None:
    """Write (N, 3) ``points`` and optional (N, 3) uint8 ``colors`` as a KeypointNet PCD.

    Args:
        fmt: ``ascii`` (KeypointNet style, the default: coordinates with 6 decimals) or
            ``binary`` (little-endian float32 x y z and uint32 rgb records, exact).
    """
    if fmt not in ("ascii", "binary"):
        raise ValueError(f"write_pcd: fmt must be 'ascii' or 'binary', got {fmt!r}")
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or not np.isfinite(p).all():
        raise DataError(f"{path}: points must be a finite (N, 3) array, got shape {p.shape}")
    c = np.zeros(p.shape, dtype=np.uint8) if colors is None else np.asarray(colors)
    if c.shape != p.shape:
        raise DataError(f"{path}: colors must have shape {p.shape}, got {c.shape}")
    c = c.astype(np.uint32)
    packed = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    n = len(p)
    head = (
        "VERSION .7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F U\nCOUNT 1 1 1 1\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {fmt}\n"
    )
    if fmt == "binary":
        rows = np.zeros(n, dtype=[("xyz", "<f4", (3,)), ("rgb", "<u4")])
        rows["xyz"], rows["rgb"] = p, packed
        write_bytes_atomic(path, head.encode() + rows.tobytes())
        return
    text = "".join(
        f"{x:.6f} {y:.6f} {z:.6f} {int(k)}\n"
        for (x, y, z), k in zip(p.tolist(), packed.tolist(), strict=True)
    )
    write_bytes_atomic(path, (head + text).encode())


# --------------------------------------------------------------------------------------- PLY

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
        values = _parse_numbers(path, lines, first_line, len(element.properties))
        out = {}
        for i, (name, dtype, _count) in enumerate(element.properties):
            # declared float32 values keep float32 precision, as in a binary file
            with np.errstate(over="ignore"):  # out-of-range values become inf, caught later
                out[name] = values[:, i].astype(np.float32) if dtype == "f4" else values[:, i]
        return out
    widths = _token_counts("\n".join(lines), len(lines))
    if len(widths) and (widths == widths[0]).all():
        values = _parse_numbers(path, lines, first_line, int(widths[0]))
        return _split_list_rows(path, element, values, first_line)
    out: dict[str, Any] = {p[0]: [] for p in element.properties}
    for i, line in enumerate(lines):
        values = _parse_numbers(path, [line], first_line + i, len(line.split()))[0]
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
    data = _read_bytes(path)
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
    _check_finite(path, vertices, None, "vertex")
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


# ------------------------------------------------------------------------------ annotations


def _number(where: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: {what} must be a number, got {str(value)[:60]!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise DataError(f"{where}: {what} is not finite ({str(value)[:40]})")
    return number


def _index(where: str, value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: {what} must be an integer, got {str(value)[:60]!r}")
    if not 0 <= value < 2**62:
        raise DataError(f"{where}: {what} must be in [0, 2**62), got {str(value)[:40]}")
    return value


def _vector(where: str, value: Any, what: str) -> list[float]:
    if not isinstance(value, list) or len(value) != 3:
        raise DataError(f"{where}: {what} must be a list of 3 numbers, got {str(value)[:80]!r}")
    return [_number(where, v, what) for v in value]


def _field(where: str, record: Any, key: str) -> Any:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if key not in record:
        raise DataError(f"{where}: missing key {key!r}")
    return record[key]


def _parse_record(path: Path, number: int, record: Any) -> ShapeAnnotation:
    where = f"{path}: record {number}"
    class_id = _field(where, record, "class_id")
    model_id = _field(where, record, "model_id")
    if not isinstance(class_id, str) or not _CLASS_ID_RE.match(class_id):
        raise DataError(f"{where}: class_id must be an 8-digit string, got {str(class_id)[:60]!r}")
    if not isinstance(model_id, str) or not _MODEL_ID_RE.match(model_id):
        raise DataError(f"{where}: model_id must be an id string, got {str(model_id)[:60]!r}")
    where = f"{path}: record {number} (model {model_id})"
    keypoints = _field(where, record, "keypoints")
    if not isinstance(keypoints, list):
        raise DataError(f"{where}: keypoints must be a list")
    symmetries = record.get("symmetries", {})
    if not isinstance(symmetries, dict):
        raise DataError(f"{where}: symmetries must be a JSON object")
    sem, pidx, xyz, fidx, uvs = [], [], [], [], []
    for k, kp in enumerate(keypoints):
        at = f"{where} keypoint {k}"
        sem.append(_index(at, _field(at, kp, "semantic_id"), "semantic_id"))
        xyz.append(_vector(at, _field(at, kp, "xyz"), "xyz"))
        pcd_info = _field(at, kp, "pcd_info")
        pidx.append(_index(at, _field(at, pcd_info, "point_index"), "point_index"))
        mesh_info = _field(at, kp, "mesh_info")
        fidx.append(_index(at, _field(at, mesh_info, "face_index"), "face_index"))
        uvs.append(_vector(at, _field(at, mesh_info, "face_uv"), "face_uv"))
    return ShapeAnnotation(
        class_id=class_id,
        model_id=model_id,
        semantic_ids=np.array(sem, dtype=np.int64),
        point_indices=np.array(pidx, dtype=np.int64),
        xyz=np.array(xyz, dtype=np.float64).reshape(-1, 3),
        face_indices=np.array(fidx, dtype=np.int64),
        face_uvs=np.array(uvs, dtype=np.float64).reshape(-1, 3),
        symmetries=symmetries,
        source=f"{path} record {number}",
    )


def read_annotations(path: str | Path) -> list[ShapeAnnotation]:
    """Read a KeypointNet annotation file (``annotations/<category>.json``).

    Every record must have ``class_id``, ``model_id``, ``keypoints`` (each with ``xyz``,
    ``semantic_id``, ``pcd_info.point_index``, ``mesh_info.face_index``, ``mesh_info.face_uv``);
    ``symmetries`` is kept as stored (``{}`` when absent). A model id may appear only once.
    """
    path = Path(path)
    records = _read_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    out = [_parse_record(path, i, record) for i, record in enumerate(records)]
    seen: dict[str, int] = {}
    for i, ann in enumerate(out):
        if ann.model_id in seen:
            raise DataError(
                f"{path}: record {i}: model {ann.model_id} is duplicated "
                f"(first in record {seen[ann.model_id]})"
            )
        seen[ann.model_id] = i
    return out


def write_annotations(
    path: str | Path,
    annotations: Iterable[ShapeAnnotation],
    colors: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write annotations as KeypointNet JSON.

    Args:
        colors: optional model_id -> (K, 3) uint8 colour of each keypoint, written as ``rgb``
            (KeypointNet stores the surface colour there); keypoints get no ``rgb`` otherwise.
    """
    records = []
    for ann in annotations:
        rgb = None if colors is None else np.asarray(colors[ann.model_id]).tolist()
        keypoints = []
        for k in range(ann.num_keypoints):
            kp: dict[str, Any] = {"xyz": ann.xyz[k].tolist()}
            if rgb is not None:
                kp["rgb"] = [int(v) for v in rgb[k]]
            kp["semantic_id"] = int(ann.semantic_ids[k])
            kp["pcd_info"] = {"point_index": int(ann.point_indices[k])}
            kp["mesh_info"] = {
                "face_index": int(ann.face_indices[k]),
                "face_uv": ann.face_uvs[k].tolist(),
            }
            keypoints.append(kp)
        records.append(
            {
                "class_id": ann.class_id,
                "model_id": ann.model_id,
                "keypoints": keypoints,
                "symmetries": ann.symmetries,
            }
        )
    write_bytes_atomic(path, json.dumps(records).encode())


def validate_annotation(
    annotation: ShapeAnnotation, n_points: int, n_faces: int | None = None
) -> None:
    """Check that keypoint indices fit a point cloud of ``n_points`` (and ``n_faces`` faces).

    Also checks that every ``face_uv`` is barycentric (entries >= -1e-3, sum 1 within 1e-3).
    """
    where = f"{annotation.source} (model {annotation.model_id})"
    for k, (p, f) in enumerate(zip(annotation.point_indices, annotation.face_indices, strict=True)):
        if not 0 <= p < n_points:
            raise DataError(
                f"{where} keypoint {k}: point_index {p} out of range for {n_points} points"
            )
        if n_faces is not None and not 0 <= f < n_faces:
            raise DataError(
                f"{where} keypoint {k}: face_index {f} out of range for {n_faces} faces"
            )
    uv = annotation.face_uvs
    bad = (np.abs(uv.sum(axis=1) - 1.0) > 1e-3) | (uv < -1e-3).any(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where} keypoint {k}: face_uv {uv[k].tolist()} is not barycentric")


# ----------------------------------------------------------------------------- sample order


def read_sample_order(path: str | Path) -> list[tuple[str, str]]:
    """Read Back to 3D's ``benchmark_indices.csv``: header ``class_id,mesh_id``, then rows.

    Returns:
        list of (class_id, model_id) in file order.
    """
    path = Path(path)
    lines = _read_text(path).splitlines()
    if not lines or lines[0].strip().replace(" ", "") != "class_id,mesh_id":
        first = lines[0][:60] if lines else ""
        raise DataError(f"{path}: line 1: expected header 'class_id,mesh_id', got {first!r}")
    out: list[tuple[str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2:
            raise DataError(f"{path}: line {number}: expected 2 fields, found {len(parts)}")
        class_id, model_id = parts
        if not _CLASS_ID_RE.match(class_id):
            raise DataError(f"{path}: line {number}: class_id {class_id[:40]!r} is not 8 digits")
        if not _MODEL_ID_RE.match(model_id):
            raise DataError(f"{path}: line {number}: invalid model id {model_id[:60]!r}")
        out.append((class_id, model_id))
    return out


def write_sample_order(path: str | Path, order: Iterable[tuple[str, str]]) -> None:
    """Write (class_id, model_id) rows as ``class_id,mesh_id`` CSV."""
    body = "".join(f"{c},{m}\n" for c, m in order)
    write_bytes_atomic(path, ("class_id,mesh_id\n" + body).encode())


def few_shot_split(
    order: Sequence[tuple[str, str]],
    class_id: str,
    shots: int,
    offset: int = 0,
    max_test: int | None = None,
    available: Iterable[str] | None = None,
) -> tuple[list[str], list[str]]:
    """The paper's few-shot protocol on a sample order.

    The rows of ``class_id`` are taken in order, dropping rows whose model is not in
    ``available`` (when given) and repeated models; after skipping ``offset`` rows, the next
    ``shots`` are the labelled shapes and every later row is a test shape (the first
    ``max_test`` of them when given).

    Returns:
        (labelled model ids, test model ids).

    Raises:
        DataError: fewer than ``shots`` shapes of the category remain.
    """
    if shots < 1 or offset < 0 or (max_test is not None and max_test < 0):
        raise ConfigError(
            f"few-shot split needs shots >= 1, offset >= 0, max_test >= 0; got shots={shots}, "
            f"offset={offset}, max_test={max_test}"
        )
    keep = None if available is None else set(available)
    ids: list[str] = []
    seen: set[str] = set()
    for c, m in order:
        if c == class_id and m not in seen and (keep is None or m in keep):
            seen.add(m)
            ids.append(m)
    if len(ids) < offset + shots:
        raise DataError(
            f"sample order: class {class_id} has {len(ids)} usable shapes, fewer than "
            f"offset {offset} + shots {shots}"
        )
    labelled = ids[offset : offset + shots]
    test = ids[offset + shots :]
    return labelled, test if max_test is None else test[:max_test]


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


# ---------------------------------------------------------------------- keypoint labels


def read_keypoint_labels(path: str | Path) -> dict[str, dict[int, str]]:
    """Read KeypointNet's ``keypoint_labels.json``: ``{"keypoint_labels": {category:
    {"<semantic id>": "text"}}}`` (``class_mapping`` and other keys are ignored).

    Returns:
        category name -> semantic id -> text label.
    """
    path = Path(path)
    content = _read_json(path)
    table = content.get("keypoint_labels") if isinstance(content, dict) else None
    if not isinstance(table, dict):
        raise DataError(f"{path}: expected an object with a 'keypoint_labels' object")
    out: dict[str, dict[int, str]] = {}
    for category, labels in table.items():
        if not isinstance(labels, dict):
            raise DataError(f"{path}: keypoint_labels.{category} must be an object")
        parsed: dict[int, str] = {}
        for key, text in labels.items():
            if not (isinstance(key, str) and key.isdigit()) or not isinstance(text, str):
                raise DataError(
                    f"{path}: keypoint_labels.{category}: expected '<semantic id>': '<text>', "
                    f"got {key!r}: {str(text)[:40]!r}"
                )
            parsed[int(key)] = text
        out[str(category)] = parsed
    return out


# ------------------------------------------------------------------------------- dataset


OWNER_MARKER = ".bt3d-dataset.json"  # in a dataset folder that a bt3d rule created


def claim_dataset_folder(root: str | Path, written_by: str) -> Path:
    """Create ``root`` and mark it as written by the workflow's ``written_by`` rule
    (``synthetic`` or ``download``), before that rule writes anything else into it."""
    marker = Path(root) / OWNER_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(marker, (json.dumps({"written_by": written_by}) + "\n").encode())
    return marker


def dataset_owner(root: str | Path) -> str | None:
    """The rule that created a dataset folder (see :func:`claim_dataset_folder`), or None for
    a folder bt3d did not create (a user's own data, which the workflow never writes to)."""
    marker = Path(root) / OWNER_MARKER
    if not marker.is_file():
        return None
    content = _read_json(marker)
    return content.get("written_by") if isinstance(content, dict) else None


def load_points(path: str | Path, n_points: int = 2048) -> np.ndarray:
    """(n_points, 3) float64 point cloud of a ``.pcd``; DataError if it has another size."""
    points, _colors = read_pcd(path)
    if len(points) != n_points:
        raise DataError(f"{path}: expected {n_points} points, found {len(points)}")
    return points.astype(np.float64)


def load_mesh(path: str | Path) -> Mesh:
    """The triangle mesh of a ``.ply``; DataError when it has no surface (check_surface)."""
    mesh = read_ply(path)
    check_surface(mesh)
    return mesh


class KeypointNetDataset:
    """A dataset root in KeypointNet layout; categories may be given by name or class id."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._annotations: dict[str, dict[str, ShapeAnnotation]] = {}

    def annotation_path(self, category: str) -> Path:
        return self.root / "annotations" / f"{category_of(category)}.json"

    def pcd_path(self, class_id: str, model_id: str) -> Path:
        return self.root / "pcds" / class_id_of(class_id) / f"{model_id}.pcd"

    def mesh_path(self, class_id: str, model_id: str) -> Path:
        return self.root / "ShapeNetCore.v2.ply" / class_id_of(class_id) / f"{model_id}.ply"

    @property
    def sample_order_path(self) -> Path:
        return self.root / "benchmark_indices.csv"

    def sample_order(self) -> list[tuple[str, str]]:
        """Rows of ``<root>/benchmark_indices.csv``."""
        return read_sample_order(self.sample_order_path)

    def annotations(self, category: str) -> dict[str, ShapeAnnotation]:
        """model_id -> annotation of a category (read once, then cached)."""
        name = category_of(category)
        if name not in self._annotations:
            records = read_annotations(self.annotation_path(name))
            expected = CATEGORY_IDS[name]
            for ann in records:
                if ann.class_id != expected:
                    raise DataError(
                        f"{ann.source}: model {ann.model_id} has class_id {ann.class_id}, "
                        f"expected {expected} ({name})"
                    )
            self._annotations[name] = {a.model_id: a for a in records}
        return self._annotations[name]

    def load_points(self, category: str, model_id: str, n_points: int = 2048) -> np.ndarray:
        """(n_points, 3) float64 point cloud of a shape (see :func:`load_points`)."""
        return load_points(self.pcd_path(category, model_id), n_points)

    def load_mesh(self, category: str, model_id: str) -> Mesh:
        """The shape's triangle mesh (see :func:`load_mesh`)."""
        return load_mesh(self.mesh_path(category, model_id))

    @property
    def keypoint_labels_path(self) -> Path:
        return self.root / "keypoint_labels.json"

    def keypoint_labels(self, category: str) -> dict[int, str]:
        """Semantic id -> text label of a category from ``<root>/keypoint_labels.json``;
        empty when the dataset has no such file or it does not list the category."""
        if not self.keypoint_labels_path.is_file():
            return {}
        return read_keypoint_labels(self.keypoint_labels_path).get(category_of(category), {})

    def annotation_order(self, category: str) -> list[tuple[str, str]]:
        """(class_id, model_id) of the category's annotated shapes in annotation-file order:
        a sample order for datasets that come without ``benchmark_indices.csv``."""
        return [(a.class_id, a.model_id) for a in self.annotations(category).values()]

    def shapes_with_files(self, category: str) -> list[str]:
        """Annotated model ids of a category whose point cloud and mesh files both exist, in
        annotation-file order."""
        return [
            model_id
            for model_id in self.annotations(category)
            if self.pcd_path(category, model_id).is_file()
            and self.mesh_path(category, model_id).is_file()
        ]

    def missing_files(self, categories: Iterable[str]) -> list[Path]:
        """Annotation files, point clouds and meshes of ``categories`` that do not exist.

        Point clouds and meshes are checked for every annotated model of a category whose
        annotation file exists.
        """
        missing: list[Path] = []
        for category in categories:
            path = self.annotation_path(category)
            if not path.is_file():
                missing.append(path)
                continue
            for model_id in self.annotations(category):
                for p in (self.pcd_path(category, model_id), self.mesh_path(category, model_id)):
                    if not p.is_file():
                        missing.append(p)
        return missing
