"""Downloads of the rules ``download`` (one KeypointNet category) and ``download_sample_order``.

Meshes, point clouds and the annotation file of a category come from the Hugging Face dataset
``qq456cvb/KeypointNet`` (shapes first, the annotation file last: it marks a finished
category); the sample order CSV from the authors' repository at a pinned commit, checked
against its sha256 before it is written. Offline, the rule fails at once and says what to do.

The Hub is ``HF_ENDPOINT`` (huggingface_hub's setting), the CSV's address
``dataset.sample_order_url``; the reachability check asks those hosts.

Integrity: the Hub's file list (sizes of all files, sha256 of LFS files, git blob ids of the
others) is fetched first; files already present that differ from it are deleted, so
``snapshot_download`` fetches them again (huggingface_hub 2.4 skips files already in place,
and resumes a file only within one process: a killed download restarts that file, in a
process-unique ``.incomplete`` file that it never reuses nor removes, so the next job of the
category deletes them). After the download every file is checked again; a mismatch or a
missing file fails the job listing the first paths and the count.
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from bt3d.atomic import atomic_write
from bt3d.errors import DataError, OfflineError
from bt3d.integrity import describe_missing, hub_manifest, verify_files
from bt3d.io import KeypointNetDataset, claim_dataset_folder, class_id_of


def require_network(root: Path, what: str, url: str, alternative: str = "") -> None:
    """Fail fast, saying what to do, when the host of ``url`` cannot be reached."""
    advice = (
        f"cannot download {what} into {root}: {{reason}}. Either run `dvc pull` (restores "
        f"data/ from the DVC remote, see .dvc/config), or copy a KeypointNet folder "
        f"(annotations/, pcds/, ShapeNetCore.v2.ply/, benchmark_indices.csv) to {root} "
        f"(config key dataset.root){alternative}, then rerun"
    )
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false"):
        raise OfflineError(advice.format(reason="HF_HUB_OFFLINE is set"))
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 443)
    try:
        socket.create_connection((parts.hostname, port), timeout=10).close()
    except OSError as exc:
        reason = f"{parts.scheme}://{parts.netloc} is unreachable ({exc})"
        raise OfflineError(advice.format(reason=reason)) from exc


def remove_stale_partials(root: Path, folders: list[str]) -> int:
    """Delete the ``*.incomplete`` files that a killed download left in huggingface_hub's
    cache of ``folders`` (``root/.cache/huggingface/download/<folder>/``): each process
    writes its own and never reuses another's. Returns how many were deleted."""
    cache = root / ".cache" / "huggingface" / "download"
    stale = [path for folder in folders for path in (cache / folder).glob("*.incomplete")]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def download_category(root: Path, category: str, repo: str) -> None:
    """One KeypointNet category from the Hugging Face dataset ``repo`` into ``root`` (a folder
    the workflow owns: claimed first), checked file by file against the Hub's manifest."""
    from huggingface_hub import constants, snapshot_download

    require_network(root, f"KeypointNet {category}", constants.ENDPOINT)
    claim_dataset_folder(root, "download")
    cid = class_id_of(category)
    folders = [f"pcds/{cid}", f"ShapeNetCore.v2.ply/{cid}", f"annotations/{category}.json"]
    if removed := remove_stale_partials(root, folders[:2]):
        print(f"removed {removed} partial files of an interrupted download")
    manifest = hub_manifest(repo, folders)
    for rel, problem in verify_files(root, manifest).items():
        if problem != "missing":
            print(f"{rel}: {problem}; fetching it again")
            (root / rel).unlink()
    print(f"downloading {category} ({cid}) from {repo} into {root}: {len(manifest)} files")
    for patterns in (
        [f"pcds/{cid}/*", f"ShapeNetCore.v2.ply/{cid}/*"],
        [f"annotations/{category}.json"],
    ):
        snapshot_download(repo, repo_type="dataset", local_dir=root, allow_patterns=patterns)
    bad = verify_files(root, manifest)
    if bad:
        (root / f"annotations/{category}.json").unlink(missing_ok=True)
        listed = [f"{rel} ({problem})" for rel, problem in bad.items()]
        raise DataError(f"{root}: {category} download is incomplete: {describe_missing(listed)}")
    missing = KeypointNetDataset(root).missing_files([category])
    if missing:
        raise DataError(
            f"{root}: {category}: annotated shapes absent from {repo}: {describe_missing(missing)}"
        )
    print(f"{category}: complete")


def download_sample_order(dest: Path, url: str, want: str) -> None:
    """The sample order CSV from ``url`` to ``dest``, written only when its sha256 is
    ``want``."""
    require_network(
        dest.parent,
        "the sample order",
        url,
        alternative=(
            ", or set dataset.sample_order to a local copy of the CSV, or to `annotations` "
            "(the order of each category's annotation file; not the paper's split)"
        ),
    )
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except urllib.error.URLError as exc:
        raise OfflineError(f"cannot fetch the sample order {url}: {exc}") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise DataError(f"{url}: sha256 {got} differs from the pinned {want}; not written")
    claim_dataset_folder(dest.parent, "download")
    with atomic_write(dest) as fh:
        fh.write(data)
    print(f"{dest}: {len(data)} bytes, sha256 verified")
