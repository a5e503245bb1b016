"""The one atomic file writer of bt3d: a temporary file beside the destination, then a rename.

The temporary file is ``.<name>.<random>.tmp`` in the destination's folder (the pattern the
workflow's scripts and ``bt3d verify`` clean up after a killed writer). It is created with
``os.open(..., 0o666)``, so the kernel applies the umask (and any default ACL) exactly as for
any other program's files: the result gets mode 0644 under umask 022 and 0664 under 002,
unlike ``tempfile.mkstemp``'s fixed 0600. It is flushed and fsynced before ``os.replace``,
so a crash leaves either the old file or the new one, never half a file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"
_ATTEMPTS = 100


def _create_temp(dest: Path) -> tuple[int, Path]:
    """Open a new ``.<name>.<random>.tmp`` beside ``dest`` for writing (mode 0o666 & ~umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_ATTEMPTS):
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{dest.parent}: no free temporary name for {dest.name}")


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
    fd, tmp = _create_temp(dest)
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


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as handle:
        handle.write(data)


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


def remove_stale_temporaries(outputs: list[str]) -> None:
    """Delete the ``.<name>.*.tmp`` files that a killed writer left beside ``outputs``."""
    for out in outputs:
        path = Path(out)
        if path.parent.is_dir():
            for tmp in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
                tmp.unlink(missing_ok=True)
