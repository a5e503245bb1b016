"""Dataset file integrity: sizes and sha256 against a manifest, and missing-file summaries.

A manifest maps paths relative to a dataset root to ``(size, sha256)`` or ``(size, sha256,
git_blob_id)``; any may be None when unknown (the Hugging Face Hub gives the size of every
file, the sha256 of LFS files and the git blob id of the others: :func:`hub_manifest`).
:func:`verify_files` reports every file that is missing or differs, so a download rule can
delete the bad ones and fetch them again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from bt3d.errors import DataError, OfflineError

Manifest = Mapping[str, tuple[int | None, str | None] | tuple[int | None, str | None, str | None]]
CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_id(path: str | os.PathLike[str]) -> str:
    """Git's object id of a file's content: sha1 of ``b"blob <size>\\0"`` + the bytes."""
    digest = hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(root: str | os.PathLike[str], manifest: Manifest) -> dict[str, str]:
    """Problems of the files of ``manifest`` under ``root``: relative path -> problem.

    A file is "missing", or has a "size X, expected Y", a "sha256 X, expected Y" or a "git
    blob id X, expected Y" (hashes are computed only when the size matches). An empty dict
    means all files are intact.
    """
    base = Path(root)
    problems: dict[str, str] = {}
    for rel, (size, sha256, *blob) in sorted(manifest.items()):
        path = base / rel
        if not path.is_file():
            problems[rel] = "missing"
            continue
        got_size = path.stat().st_size
        if size is not None and got_size != size:
            problems[rel] = f"size {got_size}, expected {size}"
            continue
        if sha256 is not None:
            got = sha256_file(path)
            if got != sha256.lower():
                problems[rel] = f"sha256 {got}, expected {sha256.lower()}"
        elif blob and blob[0] is not None:
            got = git_blob_id(path)
            if got != blob[0].lower():
                problems[rel] = f"git blob id {got}, expected {blob[0].lower()}"
    return problems


def describe_missing(paths: Iterable[str | os.PathLike[str]], limit: int = 5) -> str:
    """``"N files: a, b, c and K more"``: the count and the first ``limit`` paths."""
    items = [str(p) for p in paths]
    shown = ", ".join(items[:limit])
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return f"{len(items)} files: {shown}{more}"


def hub_manifest(repo_id: str, folders: Iterable[str], repo_type: str = "dataset") -> dict:
    """``{path: (size, lfs sha256 or None, git blob id or None)}`` of every file under
    ``folders`` of a Hub repo (the blob id for files not in LFS, whose listed ``oid`` is that
    of their content; an LFS file's ``oid`` is its pointer's).

    Uses ``HfApi.list_repo_tree(recursive=True)``; a folder path may also name one file
    (``annotations/chair.json``), looked up with ``HfApi.get_paths_info``.

    Raises:
        DataError: the Hub answers with an HTTP error (e.g. unknown repository).
        OfflineError: the Hub cannot be reached.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.hf_api import RepoFile

    api = HfApi()
    out: dict[str, tuple[int | None, str | None, str | None]] = {}
    try:
        for folder in folders:
            if Path(folder).suffix:
                entries = api.get_paths_info(repo_id, [folder], repo_type=repo_type)
            else:
                entries = api.list_repo_tree(
                    repo_id, path_in_repo=folder, recursive=True, repo_type=repo_type
                )
            for entry in entries:
                if isinstance(entry, RepoFile):
                    if entry.lfs is not None:
                        out[entry.path] = (entry.size, entry.lfs.sha256, None)
                    else:
                        out[entry.path] = (entry.size, None, entry.blob_id)
    except HfHubHTTPError as exc:
        raise DataError(f"cannot list {repo_id} on the Hugging Face Hub: {exc}") from exc
    except Exception as exc:  # the hub's HTTP client raises its own transport errors
        raise OfflineError(
            f"cannot reach the Hugging Face Hub to list {repo_id}: {type(exc).__name__}: {exc}"
        ) from exc
    return out
