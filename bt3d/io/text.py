"""Strict reading of text and JSON files and of whitespace-separated number tables: every
problem is a DataError naming the file (and the line)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bt3d.errors import DataError


def read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_text(path: str | Path) -> str:
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def read_json(path: Path) -> Any:
    """The parsed JSON content of ``path``; DataError naming the file and the position."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None


def token_counts(text: str, n_lines: int) -> np.ndarray:
    """(n_lines,) number of whitespace-separated tokens on each line of ``text``."""
    data = np.frombuffer(text.encode("utf-8", "replace"), dtype=np.uint8)
    space = (data == 32) | ((data >= 9) & (data <= 13))
    starts = np.flatnonzero(~space & np.concatenate([[True], space[:-1]]))
    line = np.searchsorted(np.flatnonzero(data == 10), starts)
    return np.bincount(line, minlength=n_lines)[:n_lines]


def parse_numbers(path: Path, lines: list[str], first_line: int, width: int) -> np.ndarray:
    """Parse ``lines`` of ``width`` numbers each into a (len(lines), width) float64 array.

    ``first_line`` is the 1-based file line number of ``lines[0]``, for error messages.
    """
    if not lines:
        return np.zeros((0, width))
    text = "\n".join(lines)
    counts = token_counts(text, len(lines))
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


def check_finite(path: Path, values: np.ndarray, first_line: int | None, what: str) -> None:
    """DataError at the first non-finite row; ``first_line`` None: no line numbers (PLY)."""
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        where = f"{path}: " if first_line is None else f"{path}: line {first_line + row}: "
        raise DataError(f"{where}{what} {row} is not finite {values[row].tolist()}")
