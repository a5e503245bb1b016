"""Artifact files: atomic writes, ``.npz`` arrays with a checked JSON header, JSON results.

Every artifact is written through :func:`atomic_write`: a temporary file in the destination's
folder, flushed and fsynced, then ``os.replace``-d over the destination. A crash therefore
leaves either the old file or the new one, never half a file, and never a stray temporary.

An ``.npz`` artifact holds its arrays plus one extra entry, ``__header__``: a JSON document
(as a uint8 array) with at least ``format_version`` and ``bt3d_version``, and usually
``config_hash``, ``backbone``, ``class_id`` and ``model_id``. :func:`load_arrays` compares
it with what the caller expects and raises :class:`bt3d.errors.CacheError` naming the file
and the field on a mismatch, and on truncated or corrupt files.

Geodesic matrices are stored as float16 (:func:`encode_geodesic` /
:func:`decode_geodesic`): normalised distances lie in ``[0, 1]``, where float16 has a
relative error of at most ``2**-11 ~ 4.9e-4`` (absolute error <= 2.5e-4 anywhere in
``[0, 1]``), far below
the 0.01 spacing of the evaluation thresholds; it halves the 2048 x 2048 matrix from 32 MiB
(float64) to 8 MiB. Raw (unnormalised) geodesics are stored as normalised float16 plus
their float64 maximum, so the same precision holds relative to the shape's diameter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

import bt3d
from bt3d.errors import CacheError

FORMAT_VERSION = 1
HEADER_KEY = "__header__"
GEODESIC_DTYPE = np.float16


def user_cache_dir() -> Path:
    """Per-user cache of derived files (converted weights, compiled helpers):
    ``$BT3D_CACHE_DIR``, else ``$XDG_CACHE_HOME/bt3d``, else ``~/.cache/bt3d``."""
    if os.environ.get("BT3D_CACHE_DIR"):
        return Path(os.environ["BT3D_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "bt3d"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and rename it to ``path``.

    Creates the parent folder. On any exception inside the ``with`` block the temporary
    file is removed, ``path`` is left untouched, and the exception propagates.

    Args:
        path: destination file.
        mode: ``"wb"`` (default) or ``"w"`` for text (UTF-8).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        kwargs: dict[str, Any] = {} if mode == "wb" else {"encoding": "utf-8"}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(dest.parent)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename on POSIX file systems (a no-op where folders cannot be opened)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


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


def save_arrays(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], header: Mapping[str, Any]
) -> Path:
    """Write ``arrays`` and a JSON ``header`` to an uncompressed ``.npz``, atomically.

    ``format_version`` and ``bt3d_version`` are added to the header when absent.
    Returns the destination path.
    """
    dest = Path(path)
    if HEADER_KEY in arrays:
        raise CacheError(f"{dest}: array name {HEADER_KEY!r} is reserved for the header")
    full = {**make_header(), **dict(header)}
    text = json.dumps(full, sort_keys=True, default=_json_default)
    payload = {name: np.asarray(value) for name, value in arrays.items()}
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
            ``model_id``); ``format_version`` is always checked.

    Returns:
        ``(arrays, header)``: every array loaded into memory, and the header dict.

    Raises:
        CacheError: file missing, truncated or corrupt; no header; a field differs.
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
    check_header(src, header, {"format_version": FORMAT_VERSION, **dict(expected or {})})
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


def save_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON (numpy arrays/scalars converted), atomically."""
    dest = Path(path)
    text = json.dumps(data, indent=1, sort_keys=False, default=_json_default)
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


def verify_artifact(path: str | os.PathLike[str]) -> str | None:
    """The problem of one run artifact, or None when it reads back cleanly.

    ``.npz``: a zip with a ``__header__`` (prototypes: their own ``format_version``) of the
    current format; ``.json``: valid JSON, predictions with a ``header`` of the current
    format. Only self-consistency is checked: whether the settings match a config is the
    consuming rule's check.
    """
    src = Path(path)
    try:
        if src.suffix == ".npz" and src.parent.name == "prototypes":
            from bt3d.fewshot import KeypointPrototypes

            KeypointPrototypes.load(src)
        elif src.suffix == ".npz":
            load_arrays(src)
        elif src.suffix == ".json":
            data = load_json(src)
            if src.parent.parent.name == "predictions":
                header = data.get("header") if isinstance(data, dict) else None
                if not isinstance(header, dict):
                    raise CacheError(f"{src}: predictions without a header")
                check_header(src, header, {"format_version": FORMAT_VERSION})
    except CacheError as exc:
        return str(exc)
    return None


def dependents(path: str | os.PathLike[str]) -> list[Path]:
    """Existing files of a ``results/<run>`` folder computed from the artifact ``path``.

    The workflow's layout: ``geodesics|features/<category>/shard-<k>.npz`` ->
    ``prototypes/<category>.npz`` -> ``predictions/<category>/*.json`` ->
    ``metrics/<category>.json``, ``plots/keypoints/<category>.png`` -> ``tables/*``,
    ``plots/*.png``, ``manifest.json``. Deleting an artifact together with these makes a
    plain ``snakemake`` rerun rebuild it (Snakemake does not rebuild a missing intermediate
    file whose consumers are up to date). A path outside that layout has no dependents.
    """
    src = Path(path)
    stage = (
        src.parent.name if src.parent.name in ("prototypes", "metrics") else src.parent.parent.name
    )
    category = src.stem if stage in ("prototypes", "metrics") else src.parent.name
    order = ["geodesics", "features", "prototypes", "predictions", "metrics"]
    if stage not in order:
        return []
    root = src.parents[1] if stage in ("prototypes", "metrics") else src.parents[2]
    level = order.index(stage)
    found: list[Path] = []
    if level <= 1:
        found.append(root / "prototypes" / f"{category}.npz")
    if level <= 2:
        found += sorted((root / "predictions" / category).glob("*.json"))
    if level <= 3:
        found += [root / "metrics" / f"{category}.json"]
        found += [root / "plots" / "keypoints" / f"{category}.png"]
    found += sorted((root / "tables").glob("*")) + [root / "manifest.json"]
    found += [root / "plots" / "miou.png", root / "plots" / "pck.png"]
    return [f for f in found if f.is_file() and f != src]


def remove_with_dependents(path: str | os.PathLike[str]) -> list[Path]:
    """Delete ``path`` and its :func:`dependents`; returns the dependents deleted."""
    removed = dependents(path)
    Path(path).unlink(missing_ok=True)
    for f in removed:
        f.unlink(missing_ok=True)
    return removed


def verify_run(
    folder: str | os.PathLike[str], delete: bool = False
) -> tuple[int, list[tuple[Path, str]]]:
    """Check every ``.npz``/``.json`` under ``folder`` (a ``results/<run>``) and stray temps.

    Returns ``(files checked, [(path, problem), ...])``. With ``delete``, bad files and
    leftover ``.*.tmp`` files of interrupted writes are removed, so that
    ``snakemake`` rebuilds exactly them (and what depends on them).
    """
    root = Path(folder)
    if not root.is_dir():
        raise CacheError(f"{root}: no such results folder")
    bad: list[tuple[Path, str]] = []
    checked = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            bad.append((path, f"{path}: temporary file of an interrupted write"))
        elif path.suffix in (".npz", ".json"):
            checked += 1
            problem = verify_artifact(path)
            if problem:
                bad.append((path, problem))
    if delete:
        for path, _ in bad:
            remove_with_dependents(path)
    return checked, bad
