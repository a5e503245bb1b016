"""Named 3D landmarks as people keep them: MeshLab PickPoints ``.pp`` files and CSV files.

Two formats, both read strictly (one-line :class:`bt3d.errors.DataError` naming the file and
the point at fault) and both written by :func:`write_pp` / :func:`write_csv`:

* MeshLab's PickPoints XML (Edit > PickPoints > Save), one ``<point>`` per landmark::

      <!DOCTYPE PickedPoints>
      <PickedPoints>
       <DocumentData>...<DataFileName name="chair.ply"/>...</DocumentData>
       <point x="0.1" y="0.2" z="0.3" name="seat_front_left" active="1"/>
      </PickedPoints>

  A point with ``active="0"`` is one MeshLab lists but the user left unticked (not placed);
  it is skipped. A missing ``active`` means active (older files).
* CSV with the header ``name,x,y,z`` (further columns, e.g. the ``confidence`` that
  ``bt3d detect`` writes, are allowed and ignored), one landmark per row.

Coordinates are in the mesh file's own frame and units. Names must be non-empty and unique
within a file.
"""

from __future__ import annotations

import csv
import io
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bt3d.cache import atomic_write
from bt3d.errors import DataError

LABEL_SUFFIXES = (".pp", ".csv")
CSV_HEADER = ("name", "x", "y", "z")


@dataclass(frozen=True)
class Landmarks:
    """Named points of one shape.

    Attributes:
        names: (K,) landmark names, unique, in file order.
        xyz: (K, 3) float64 positions in the mesh file's frame and units.
        source: the file they came from, for error messages.
    """

    names: tuple[str, ...]
    xyz: np.ndarray
    source: str = "<landmarks>"

    def __post_init__(self) -> None:
        xyz = np.asarray(self.xyz, dtype=np.float64).reshape(-1, 3)
        if len(xyz) != len(self.names):
            raise DataError(f"{self.source}: {len(self.names)} names but {len(xyz)} positions")
        object.__setattr__(self, "xyz", xyz)

    def __len__(self) -> int:
        return len(self.names)


def _coordinate(path: Path, where: str, text: str | None, axis: str) -> float:
    if text is None or not text.strip():
        raise DataError(f"{path}: {where} has no {axis} coordinate")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}: {where} has a non-numeric {axis} coordinate {text!r}") from None
    if not math.isfinite(value):
        raise DataError(f"{path}: {where} has a non-finite {axis} coordinate {text!r}")
    return value


def _checked(path: Path, names: list[str], xyz: list[list[float]], empty_hint: str) -> Landmarks:
    if not names:
        raise DataError(f"{path}: no labelled points; {empty_hint}")
    seen: set[str] = set()
    for number, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(f"{path}: point {number} {name!r}: the name occurs twice in the file")
        seen.add(name)
    return Landmarks(tuple(names), np.array(xyz, dtype=np.float64), str(path))


def read_pp(path: str | Path) -> Landmarks:
    """Read a MeshLab PickPoints file; inactive (unticked) points are skipped.

    Raises:
        DataError: unreadable or not PickPoints XML, a point without a name or with a
            missing/non-numeric/non-finite coordinate, a name used twice, or no active point.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read labels file ({exc.strerror or exc})") from None
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DataError(f"{path}: not a MeshLab PickPoints file (XML error: {exc})") from None
    if root.tag != "PickedPoints":
        raise DataError(
            f"{path}: not a MeshLab PickPoints file (root element <{root.tag}>, "
            "expected <PickedPoints>)"
        )
    names: list[str] = []
    xyz: list[list[float]] = []
    for number, point in enumerate(root.iter("point"), start=1):
        name = (point.get("name") or "").strip()
        where = f"point {number}" + (f" {name!r}" if name else "")
        if not name:
            raise DataError(f"{path}: {where} has no name; name every point in PickPoints")
        active = point.get("active", "1").strip()
        if active not in ("0", "1"):
            raise DataError(f"{path}: {where} has active={active!r}, expected 0 or 1")
        if active == "0":
            continue
        xyz.append([_coordinate(path, where, point.get(axis), axis) for axis in "xyz"])
        names.append(name)
    return _checked(
        path, names, xyz, "pick points in MeshLab (Edit > PickPoints), tick them and save"
    )


def read_csv(path: str | Path) -> Landmarks:
    """Read a ``name,x,y,z`` CSV (header required; further columns ignored).

    Raises:
        DataError: unreadable, wrong header, a row with too few fields, an empty name, a
            non-numeric or non-finite coordinate, a name used twice, or no row.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read labels file ({exc})") from None
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{path}: empty CSV; expected a header {','.join(CSV_HEADER)}")
    header = tuple(cell.strip().lower() for cell in rows[0][: len(CSV_HEADER)])
    if header != CSV_HEADER:
        raise DataError(
            f"{path}: header is {','.join(rows[0])!r}; expected it to start with "
            f"{','.join(CSV_HEADER)}"
        )
    names: list[str] = []
    xyz: list[list[float]] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < len(CSV_HEADER):
            raise DataError(f"{path}: line {line} has {len(row)} fields, expected name,x,y,z")
        name = row[0].strip()
        if not name:
            raise DataError(f"{path}: line {line} has an empty name")
        where = f"point {len(names) + 1} {name!r} (line {line})"
        xyz.append([_coordinate(path, where, row[i + 1], axis) for i, axis in enumerate("xyz")])
        names.append(name)
    return _checked(path, names, xyz, "add one row name,x,y,z per landmark")


def read_landmarks(path: str | Path) -> Landmarks:
    """Read ``.pp`` or ``.csv`` by the file's suffix; DataError for any other suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pp":
        return read_pp(path)
    if suffix == ".csv":
        return read_csv(path)
    raise DataError(
        f"{path}: unknown labels format {suffix or '(no suffix)'!r}; give a MeshLab .pp or a "
        "name,x,y,z .csv file"
    )


def _fmt(value: float) -> str:
    return repr(float(value))


def write_pp(
    path: str | Path,
    names: Sequence[str],
    xyz: np.ndarray,
    mesh_name: str = "",
    confidences: Sequence[float] | None = None,
) -> Path:
    """Write a MeshLab PickPoints file, atomically.

    Args:
        names: (K,) landmark names.
        xyz: (K, 3) positions in the mesh file's frame.
        mesh_name: the mesh file name MeshLab records in ``DataFileName``.
        confidences: optional (K,) values, written as a ``confidence`` attribute of each
            point (MeshLab ignores attributes it does not know).
    """
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    root = ET.Element("PickedPoints")
    doc = ET.SubElement(root, "DocumentData")
    ET.SubElement(doc, "DataFileName", name=mesh_name)
    ET.SubElement(doc, "templateName", name="")
    for k, (name, p) in enumerate(zip(names, xyz, strict=True)):
        attrs = {"x": _fmt(p[0]), "y": _fmt(p[1]), "z": _fmt(p[2]), "name": str(name)}
        attrs["active"] = "1"
        if confidences is not None:
            attrs["confidence"] = f"{float(confidences[k]):.4f}"
        ET.SubElement(root, "point", attrs)
    ET.indent(root, space=" ")
    text = "<!DOCTYPE PickedPoints>\n" + ET.tostring(root, encoding="unicode") + "\n"
    with atomic_write(path, mode="w") as handle:
        handle.write(text)
    return Path(path)


def write_csv(
    path: str | Path,
    names: Sequence[str],
    xyz: np.ndarray,
    confidences: Sequence[float] | None = None,
) -> Path:
    """Write ``name,x,y,z[,confidence]`` rows, atomically (readable by :func:`read_csv`)."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_HEADER, *(["confidence"] if confidences is not None else [])])
    for k, (name, p) in enumerate(zip(names, xyz, strict=True)):
        row = [str(name), _fmt(p[0]), _fmt(p[1]), _fmt(p[2])]
        if confidences is not None:
            row.append(f"{float(confidences[k]):.4f}")
        writer.writerow(row)
    with atomic_write(path, mode="w") as handle:
        handle.write(out.getvalue())
    return Path(path)


__all__ = [
    "CSV_HEADER",
    "LABEL_SUFFIXES",
    "Landmarks",
    "read_csv",
    "read_landmarks",
    "read_pp",
    "write_csv",
    "write_pp",
]
