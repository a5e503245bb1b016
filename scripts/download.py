"""Rule ``download``: KeypointNet (configured categories) and the paper's sample order.

Meshes, point clouds and annotations come from the Hugging Face dataset
``qq456cvb/KeypointNet``; the sample order CSV from the authors' repository at a pinned
commit, checked against its sha256. A category whose files are all present is left as it
is, so a folder restored by ``dvc pull`` or copied by hand is used without network access.
"""

import hashlib
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

from _common import dataset_root, run

HOSTS = ("huggingface.co", "raw.githubusercontent.com")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_network(root: Path, what: list[str]) -> None:
    """Fail fast, saying what to do, when the download hosts cannot be reached."""
    from bt3d.errors import OfflineError

    advice = (
        f"cannot download {', '.join(what)} into {root}: {{reason}}. Either run `dvc pull` "
        f"(restores {root} from the DVC remote, see .dvc/config), or copy a KeypointNet folder "
        f"(annotations/, pcds/, ShapeNetCore.v2.ply/, benchmark_indices.csv) to {root} "
        "(config key dataset.root), then rerun"
    )
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise OfflineError(advice.format(reason="HF_HUB_OFFLINE is set"))
    for host in HOSTS:
        try:
            socket.create_connection((host, 443), timeout=10).close()
        except OSError as exc:
            raise OfflineError(advice.format(reason=f"{host} is unreachable ({exc})")) from exc


def fetch_sample_order(url: str, sha256: str, dest: Path) -> None:
    from bt3d.cache import atomic_write
    from bt3d.errors import DataError, OfflineError

    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except urllib.error.URLError as exc:
        raise OfflineError(f"cannot fetch the sample order {url}: {exc}") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise DataError(f"{url}: sha256 {got} differs from the pinned {sha256}; not written")
    with atomic_write(dest) as fh:
        fh.write(data)


def main(snakemake) -> None:
    from huggingface_hub import snapshot_download

    from bt3d.errors import DataError
    from bt3d.io import KeypointNetDataset, class_id_of

    p = snakemake.params
    root = dataset_root(snakemake.output.sample_order)
    dataset = KeypointNetDataset(root)
    order = Path(snakemake.output.sample_order)
    need_order = not (order.is_file() and sha256_of(order) == p.sample_order_sha256)
    missing = [c for c in p.categories if dataset.missing_files([c])]
    if not need_order and not missing:
        print(f"{root}: complete for {', '.join(p.categories)}; used as it is")
        return
    require_network(root, missing + (["the sample order"] if need_order else []))
    for category in missing:
        cid = class_id_of(category)
        print(f"downloading {category} ({cid}) from {p.repo_id}")
        # Shapes first, annotations last: the annotation file marks a finished category.
        snapshot_download(
            p.repo_id,
            repo_type="dataset",
            local_dir=root,
            allow_patterns=[f"pcds/{cid}/*", f"ShapeNetCore.v2.ply/{cid}/*"],
        )
        snapshot_download(
            p.repo_id,
            repo_type="dataset",
            local_dir=root,
            allow_patterns=[f"annotations/{category}.json"],
        )
    if need_order:
        fetch_sample_order(p.sample_order_url, p.sample_order_sha256, order)
    still = dataset.missing_files(p.categories)
    if still:
        raise DataError(f"{root}: {len(still)} files still missing after download, e.g. {still[0]}")
    print(f"{root}: downloaded {', '.join(missing) or 'nothing'}; sample order verified")


run(main, snakemake)  # noqa: F821 (injected by Snakemake)
