"""A compiled all-sources Dijkstra (``dijkstra.c``), built on first use with the system C
compiler and loaded with :mod:`ctypes`.

The shared library is cached as ``<user cache>/native/dijkstra-<sha256[:16]>.so`` keyed by the
C source and the compiler command, so it is built once per machine (under a second). Without a
working compiler :func:`load_dijkstra` returns ``None`` and :mod:`bt3d.geodesic` falls back to
scipy, which gives bitwise the same distances (``tests/test_geodesic.py``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bt3d.cache import user_cache_dir

SOURCE = Path(__file__).with_name("dijkstra.c")
# No -ffast-math, no FMA contraction: the distances must be plain IEEE double sums.
CFLAGS = ("-O2", "-fPIC", "-shared", "-pthread", "-ffp-contract=off", "-fno-fast-math")


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _build(compiler: str, target: Path) -> bool:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    os.close(fd)
    try:
        done = subprocess.run(
            [compiler, *CFLAGS, str(SOURCE), "-o", tmp, "-lm"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            return False
        os.replace(tmp, target)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


@functools.lru_cache(maxsize=1)
def load_dijkstra():
    """The compiled ``bt3d_dijkstra_all`` function, or ``None`` when it cannot be built."""
    compiler = _compiler()
    if compiler is None:
        return None
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join((compiler, *CFLAGS)).encode())
    target = user_cache_dir() / "native" / f"dijkstra-{key.hexdigest()[:16]}.so"
    try:
        if not target.is_file() and not _build(compiler, target):
            return None
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError):
        return None
    fn = lib.bt3d_dijkstra_all
    pointer = np.ctypeslib.ndpointer
    fn.argtypes = [
        pointer(np.int64, flags="C_CONTIGUOUS"),
        pointer(np.int32, flags="C_CONTIGUOUS"),
        pointer(np.float64, flags="C_CONTIGUOUS"),
        pointer(np.int32, flags="C_CONTIGUOUS"),
        ctypes.c_int64,
        pointer(np.float64, flags="C_CONTIGUOUS,WRITEABLE"),
        ctypes.c_int,
    ]
    fn.restype = ctypes.c_int
    return fn


def dijkstra_all(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    order: np.ndarray,
    threads: int = 1,
) -> np.ndarray | None:
    """Shortest-path distances from every node of a directed CSR graph.

    Args:
        indptr: (N + 1,) row pointers; indices: (E,) column of each edge; weights: (E,)
            non-negative float64 edge lengths (an undirected graph is given with both
            directions).
        order: (N,) node i of this graph is node ``order[i]`` of the result (a permutation;
            the graph renumbered for memory locality, see :func:`bt3d.geodesic.renumbered`).
        threads: POSIX threads, each taking a contiguous block of sources.

    Returns:
        (N, N) float64 in the numbering of ``order``, ``inf`` where unreachable; ``None``
        when the library is unavailable.
    """
    n = len(indptr) - 1
    fn = load_dijkstra() if n < 2**29 else None  # heap slots are int32 in the C code
    if fn is None:
        return None
    out = np.empty((n, n), dtype=np.float64)
    status = fn(
        np.ascontiguousarray(indptr, dtype=np.int64),
        np.ascontiguousarray(indices, dtype=np.int32),
        np.ascontiguousarray(weights, dtype=np.float64),
        np.ascontiguousarray(order, dtype=np.int32),
        n,
        out,
        max(1, int(threads)),
    )
    if status != 0:
        raise MemoryError(f"native Dijkstra could not allocate its heaps for {n} nodes")
    return out
