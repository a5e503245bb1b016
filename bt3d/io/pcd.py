"""PCD point clouds (ASCII, binary and binary_compressed; KeypointNet ships ASCII ``x y z rgb``
with rgb packed as one unsigned int)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bt3d.atomic import write_bytes_atomic
from bt3d.errors import DataError
from bt3d.io.text import check_finite, parse_numbers, read_bytes

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
    header, start, body = _pcd_header(path, read_bytes(path))
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
    check_finite(path, xyz, None, "point")
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
    values = parse_numbers(path, data, start + 1, len(fields))
    cols = [fields.index(a) for a in "xyz"]
    xyz = values[:, cols]
    check_finite(path, xyz, start + 1, "point")
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
