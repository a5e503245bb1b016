"""Artifact files: atomic writes, ``.npz`` arrays with a checked JSON header, JSON results.

Every artifact is written through :func:`atomic_write`: a temporary file in the destination's
folder, flushed and fsynced, then ``os.replace``-d over the destination. A crash therefore
leaves either the old file or the new one, never half a file, and never a stray temporary.

An ``.npz`` artifact holds its arrays plus one extra entry, ``__header__``: a JSON document
(as a uint8 array) with at least ``format_version`` and ``bt3d_version``, and usually
``config_hash``, ``backbone``, ``class_id`` and ``model_id``. :func:`load_arrays` compares
it with what the caller expects and raises :class:`bt3d.errors.CacheError` naming the file
and the field on a mismatch, and on truncated or corrupt files.

Every artifact is sealed: its header's ``checksum`` is the sha256 of its content
(:func:`seal` on write, :func:`check` on every read and in ``bt3d verify``). For an ``.npz``
the content is every array's name, dtype, shape and bytes in sorted name order; for a JSON
artifact (:func:`save_json_atomic` / :func:`load_json_artifact`: predictions, metrics, the
run manifest) it is the canonical JSON (sorted keys, no spaces) of the document without its
``header``. A flipped digit anywhere in the content is thus a :class:`CacheError`, not a
silently different table.

Geodesic matrices are stored as float16 (:func:`encode_geodesic` /
:func:`decode_geodesic`): normalised distances lie in ``[0, 1]``, where float16 has a
relative error of at most ``2**-11 ~ 4.9e-4`` (absolute error <= 2.5e-4 anywhere in
``[0, 1]``), far below
the 0.01 spacing of the evaluation thresholds; it halves the 2048 x 2048 matrix from 32 MiB
(float64) to 8 MiB. Raw (unnormalised) geodesics are stored as normalised float16 plus
their float64 maximum, so the same precision holds relative to the shape's diameter.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

import bt3d
from bt3d.atomic import atomic_write
from bt3d.errors import CacheError

# 2: every artifact's header carries a content checksum (``seal``/``check``)
FORMAT_VERSION = 2
HEADER_KEY = "__header__"
CHECKSUM_KEY = "checksum"
GEODESIC_DTYPE = np.float16


def user_cache_dir() -> Path:
    """Per-user cache of derived files (converted weights, compiled helpers):
    ``$BT3D_CACHE_DIR``, else ``$XDG_CACHE_HOME/bt3d``, else ``~/.cache/bt3d``."""
    if os.environ.get("BT3D_CACHE_DIR"):
        return Path(os.environ["BT3D_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "bt3d"


def config_hash(config: Mapping[str, Any], length: int = 12) -> str:
    """Short, stable sha256 hex digest of ``config`` as canonical JSON (sorted keys).

    Tuples and lists hash alike; numpy scalars are converted to Python numbers.
    """
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def make_header(**fields: Any) -> dict[str, Any]:
    """A header with ``format_version`` and ``bt3d_version`` filled in, plus ``fields``."""
    return {"format_version": FORMAT_VERSION, "bt3d_version": bt3d.__version__, **fields}


def _arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over each array's name, dtype, shape and C-order bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.asarray(arrays[name])
        frame = json.dumps([name, value.dtype.str, list(value.shape), value.nbytes])
        digest.update(frame.encode("utf-8") + b"\n")
        digest.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8))  # no copy
    return "sha256:" + digest.hexdigest()


def _json_digest(body: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of ``body``.

    ``body`` goes through a JSON round trip first, so that numpy values, tuples and integer
    keys hash as they read back.
    """
    plain = json.loads(json.dumps(body, default=_json_default))
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest(arrays: Mapping[str, np.ndarray] | None, body: Mapping[str, Any] | None) -> str:
    if (arrays is None) == (body is None):
        raise TypeError("give exactly one of arrays= (an .npz) or body= (a JSON document)")
    return _arrays_digest(arrays) if arrays is not None else _json_digest(body or {})


def seal(
    header: Mapping[str, Any],
    *,
    arrays: Mapping[str, np.ndarray] | None = None,
    body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``header`` plus the ``checksum`` of the artifact's content (replacing any old one).

    Args:
        header: the artifact's header fields.
        arrays: an ``.npz`` artifact's arrays (without the header), or
        body: a JSON artifact's document without its ``header`` key.
    """
    return {**dict(header), CHECKSUM_KEY: _digest(arrays, body)}


def check(
    src: str | os.PathLike[str],
    header: Mapping[str, Any],
    *,
    arrays: Mapping[str, np.ndarray] | None = None,
    body: Mapping[str, Any] | None = None,
) -> None:
    """Raise :class:`CacheError` naming ``src`` unless the content matches ``header``'s
    checksum (see :func:`seal`)."""
    want = header.get(CHECKSUM_KEY)
    if not isinstance(want, str):
        raise CacheError(f"{src}: header has no content checksum; not a sealed bt3d artifact")
    got = _digest(arrays, body)
    if got != want:
        raise CacheError(
            f"{src}: content does not match its checksum ({got[:19]}..., header says "
            f"{want[:19]}...): altered or corrupted after it was written; delete it to recompute"
        )


def save_arrays(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], header: Mapping[str, Any]
) -> Path:
    """Write ``arrays`` and a JSON ``header`` to an uncompressed ``.npz``, atomically.

    ``format_version`` and ``bt3d_version`` are added to the header when absent, and the
    content ``checksum`` (:func:`seal`) always. Returns the destination path.
    """
    dest = Path(path)
    if HEADER_KEY in arrays:
        raise CacheError(f"{dest}: array name {HEADER_KEY!r} is reserved for the header")
    payload = {name: np.asarray(value) for name, value in arrays.items()}
    full = seal({**make_header(), **dict(header)}, arrays=payload)
    text = json.dumps(full, sort_keys=True, default=_json_default)
    payload[HEADER_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with atomic_write(dest) as handle:
        np.savez(handle, **payload)
    return dest


def load_arrays(
    path: str | os.PathLike[str], expected: Mapping[str, Any] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read an ``.npz`` written by :func:`save_arrays` and check its header.

    Args:
        path: the file.
        expected: header fields that must match exactly (e.g. ``config_hash``, ``backbone``,
            ``model_id``); ``format_version`` and the content checksum are always checked.

    Returns:
        ``(arrays, header)``: every array loaded into memory, and the header dict.

    Raises:
        CacheError: file missing, truncated or corrupt; no header; content differs from its
            checksum; a field differs.
    """
    src = Path(path)
    if not src.is_file():
        raise CacheError(f"{src}: cached artifact does not exist")
    try:
        with np.load(src, allow_pickle=False) as data:
            if HEADER_KEY not in data.files:
                raise CacheError(f"{src}: no {HEADER_KEY!r} entry; not a bt3d artifact")
            raw = data[HEADER_KEY]
            arrays = {name: data[name] for name in data.files if name != HEADER_KEY}
    except CacheError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as exc:
        raise CacheError(f"{src}: truncated or corrupt .npz ({type(exc).__name__}: {exc})") from exc
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheError(f"{src}: header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise CacheError(f"{src}: header must be a JSON object, got {type(header).__name__}")
    check_header(src, header, {"format_version": FORMAT_VERSION})
    check(src, header, arrays=arrays)
    check_header(src, header, dict(expected or {}))
    return arrays, header


def check_header(src: Path, header: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Raise :class:`CacheError` naming ``src`` and the first field whose value differs."""
    for key, want in expected.items():
        if key not in header:
            raise CacheError(f"{src}: header has no field {key!r} (expected {want!r})")
        got = header[key]
        if _normalise(got) != _normalise(want):
            raise CacheError(
                f"{src}: header field {key!r} is {got!r}, expected {want!r} "
                "(stale or foreign artifact; delete it to recompute)"
            )


def _normalise(value: Any) -> Any:
    """Compare through JSON so that tuples equal lists and numpy scalars equal numbers."""
    return json.loads(json.dumps(value, sort_keys=True, default=_json_default))


def encode_geodesic(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """Compress a geodesic matrix ``(N, N)`` to ``(normalised float16 (N, N), scale)``.

    ``scale`` is the float64 maximum (1.0 for an already normalised matrix, 0.0 for an
    all-zero one). Values must be finite and non-negative.
    """
    d = np.asarray(matrix, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise CacheError(f"geodesic matrix must be square (N, N), got {d.shape}")
    if not np.isfinite(d).all() or (d < 0).any():
        raise CacheError("geodesic matrix must be finite and non-negative to be cached")
    scale = float(d.max()) if d.size else 0.0
    normalised = d / scale if scale > 0 else d
    return normalised.astype(GEODESIC_DTYPE), scale


def decode_geodesic(encoded: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Inverse of :func:`encode_geodesic`: ``(N, N)`` float64 = ``encoded * scale``."""
    return np.asarray(encoded, dtype=np.float64) * float(scale)


def save_geodesics(
    path: str | os.PathLike[str], geodesic: np.ndarray, header: Mapping[str, Any]
) -> Path:
    """Store a raw (N, N) geodesic matrix as float16 normalised + float64 scale, atomically."""
    encoded, scale = encode_geodesic(geodesic)
    arrays = {"geodesic_f16": encoded, "geodesic_scale": np.float64(scale)}
    return save_arrays(path, arrays, {"kind": "geodesics", **dict(header)})


def load_geodesics(
    path: str | os.PathLike[str], expected: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read :func:`save_geodesics` output: ``(raw (N, N), normalised (N, N), header)``.

    Both matrices are float64 within float16 precision (see the module docstring).
    """
    arrays, header = load_arrays(path, {"kind": "geodesics", **dict(expected or {})})
    for key in ("geodesic_f16", "geodesic_scale"):
        if key not in arrays:
            raise CacheError(f"{path}: geodesics file lacks array {key!r}")
    normalised = decode_geodesic(arrays["geodesic_f16"])
    return normalised * float(arrays["geodesic_scale"]), normalised, header


def save_json_atomic(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write the JSON artifact ``data`` (numpy arrays/scalars converted), sealed, atomically.

    The written document is ``{"header": ..., **body}``: ``data``'s own ``header`` (if any)
    completed by :func:`make_header` and the body's ``checksum`` (:func:`seal`); read it back
    with :func:`load_json_artifact`.
    """
    dest = Path(path)
    if not isinstance(data, Mapping):
        raise TypeError(f"{dest}: a JSON artifact must be an object, got {type(data).__name__}")
    body = {key: value for key, value in data.items() if key != "header"}
    header = seal({**make_header(), **dict(data.get("header") or {})}, body=body)
    text = json.dumps({"header": header, **body}, indent=1, default=_json_default)
    with atomic_write(dest, mode="w") as handle:
        handle.write(text + "\n")
    return dest


def load_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; :class:`CacheError` naming the file when missing or malformed."""
    src = Path(path)
    try:
        text = src.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CacheError(f"{src}: JSON file does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CacheError(f"{src}: cannot read JSON ({exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CacheError(f"{src}: malformed JSON at line {exc.lineno}: {exc.msg}") from exc


def load_json_artifact(
    path: str | os.PathLike[str], expected: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Read a JSON artifact written by :func:`save_json_atomic` and check it.

    Checks, in order: valid JSON object with a ``header``, the current ``format_version``,
    the content checksum (:func:`check`), then the ``expected`` header fields.

    Returns:
        the whole document, ``header`` included.

    Raises:
        CacheError: naming the file and the problem.
    """
    src = Path(path)
    data = load_json(src)
    header = data.get("header") if isinstance(data, dict) else None
    if not isinstance(header, dict):
        raise CacheError(f"{src}: JSON artifact without a header")
    check_header(src, header, {"format_version": FORMAT_VERSION})
    check(src, header, body={key: value for key, value in data.items() if key != "header"})
    check_header(src, header, dict(expected or {}))
    return data
