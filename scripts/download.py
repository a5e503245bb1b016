"""Rules ``download`` (one KeypointNet category) and ``download_sample_order``.

Meshes, point clouds and the annotation file of a category come from the Hugging Face dataset
``qq456cvb/KeypointNet`` (shapes first, the annotation file last: it marks a finished
category); the sample order CSV from the authors' repository at a pinned commit, checked
against its sha256 before it is written. Shapes already present are not fetched again.
Offline, the rule fails at once and says what to do instead.
"""

import hashlib
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

from _common import dataset_root, run


def require_network(root: Path, what: str, host: str) -> None:
    """Fail fast, saying what to do, when ``host`` cannot be reached."""
    from bt3d.errors import OfflineError

    advice = (
        f"cannot download {what} into {root}: {{reason}}. Either run `dvc pull` (restores "
        f"data/ from the DVC remote, see .dvc/config), or copy a KeypointNet folder "
        f"(annotations/, pcds/, ShapeNetCore.v2.ply/, benchmark_indices.csv) to {root} "
        "(config key dataset.root), then rerun"
    )
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false"):
        raise OfflineError(advice.format(reason="HF_HUB_OFFLINE is set"))
    try:
        socket.create_connection((host, 443), timeout=10).close()
    except OSError as exc:
        raise OfflineError(advice.format(reason=f"{host} is unreachable ({exc})")) from exc


def download_category(snakemake) -> None:
    from huggingface_hub import snapshot_download

    from bt3d.errors import DataError
    from bt3d.io import KeypointNetDataset, class_id_of

    category = snakemake.wildcards.category
    root = dataset_root(snakemake.output.annotations)
    require_network(root, f"KeypointNet {category}", "huggingface.co")
    cid = class_id_of(category)
    print(f"downloading {category} ({cid}) from {snakemake.params.repo_id} into {root}")
    for patterns in (
        [f"pcds/{cid}/*", f"ShapeNetCore.v2.ply/{cid}/*"],
        [f"annotations/{category}.json"],
    ):
        snapshot_download(
            snakemake.params.repo_id, repo_type="dataset", local_dir=root, allow_patterns=patterns
        )
    missing = KeypointNetDataset(root).missing_files([category])
    if missing:
        raise DataError(
            f"{root}: {len(missing)} files of {category} missing after download, e.g. {missing[0]}"
        )
    print(f"{category}: complete")


def download_sample_order(snakemake) -> None:
    from bt3d.cache import atomic_write
    from bt3d.errors import DataError, OfflineError

    dest = Path(snakemake.output.sample_order)
    url, want = snakemake.params.url, snakemake.params.sha256
    require_network(dest.parent, "the sample order", "raw.githubusercontent.com")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except urllib.error.URLError as exc:
        raise OfflineError(f"cannot fetch the sample order {url}: {exc}") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise DataError(f"{url}: sha256 {got} differs from the pinned {want}; not written")
    with atomic_write(dest) as fh:
        fh.write(data)
    print(f"{dest}: {len(data)} bytes, sha256 verified")


def main(snakemake) -> None:
    if snakemake.rule == "download_sample_order":
        download_sample_order(snakemake)
    else:
        download_category(snakemake)


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
