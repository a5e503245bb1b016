"""Every artifact is sealed (content checksum in its header) and gets the umask's mode.

Issue 7, cases 4 and 5: a flipped digit in a predictions file passed ``bt3d verify`` and
changed the tables; every artifact was written 0600 whatever the umask.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bt3d.cache import (
    FORMAT_VERSION,
    atomic_write,
    check,
    load_arrays,
    load_json_artifact,
    make_header,
    save_arrays,
    save_json_atomic,
    seal,
)
from bt3d.errors import CacheError
from bt3d.fewshot import KeypointPrototypes
from bt3d.io import write_annotations, write_pcd, write_ply, write_sample_order
from bt3d.results import verify_run
from bt3d.structures import Mesh

REPO = Path(__file__).resolve().parents[1]
MISMATCH = "content does not match its checksum"


def predictions(root: Path) -> Path:
    """A results folder's predictions shard as scripts/optimize.py writes it."""
    path = root / "predictions" / "chair" / "shard-0.json"
    save_json_atomic(
        path,
        {
            "header": make_header(kind="predictions", category="chair", shard=0),
            "category": "chair",
            "predictions": [
                {
                    "model_id": "1a2b",
                    "semantic_ids": np.array([0, 3]),
                    "indices": np.array([1234, 77]),
                    "confidences": np.array([0.5, 0.25], dtype=np.float32),
                }
            ],
        },
    )
    return path


def prototypes() -> KeypointPrototypes:
    return KeypointPrototypes(
        semantic_ids=np.array([0, 3]),
        features=np.arange(6, dtype=np.float32).reshape(2, 3),
        target_distances=np.array([[0.0, 0.4], [0.4, 0.0]]),
        pair_counts=np.ones((2, 2), np.int64),
        shot_ids=["a", "b"],
        reduction="mean",
    )


# ------------------------------------------------------------------------ seal / check


def test_seal_is_stable_through_a_json_round_trip() -> None:
    body = {"b": (1, 2), "a": {"x": np.float32(0.1), 3: np.arange(2)}}
    sealed = seal({"kind": "k"}, body=body)
    assert sealed["kind"] == "k" and sealed["checksum"].startswith("sha256:")
    check("f.json", sealed, body=json.loads(json.dumps(body, default=lambda v: v.tolist())))
    with pytest.raises(CacheError, match=f"f.json: {MISMATCH}"):
        check("f.json", sealed, body={**body, "b": (1, 3)})
    with pytest.raises(CacheError, match="f.json: header has no content checksum"):
        check("f.json", {"kind": "k"}, body=body)


def test_array_checksum_covers_names_dtypes_shapes_and_bytes() -> None:
    arrays = {"x": np.arange(6, dtype=np.int64).reshape(2, 3), "y": np.zeros(2)}
    header = seal({}, arrays=arrays)
    check("a.npz", header, arrays={"y": np.zeros(2), "x": arrays["x"].copy()})  # any order
    for changed in (
        {**arrays, "x": arrays["x"].reshape(3, 2)},
        {**arrays, "x": arrays["x"].astype(np.int32)},
        {"x": arrays["x"], "z": arrays["y"]},
        {**arrays, "y": np.array([0.0, 1e-300])},
    ):
        with pytest.raises(CacheError, match=MISMATCH):
            check("a.npz", header, arrays=changed)


# ------------------------------------------------------------------ altered artifacts


def rewrite_npz(path: Path, edit: Callable[[dict], None]) -> None:
    """Change an array of an .npz in place, keeping its header (a bit flip that still
    unzips)."""
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    edit(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_altered_npz_array_is_caught_by_the_reader(tmp_path: Path) -> None:
    path = save_arrays(tmp_path / "f.npz", {"x": np.arange(5.0)}, {"kind": "f"})
    rewrite_npz(path, lambda a: a["x"].__setitem__(2, 2.5))
    with pytest.raises(CacheError, match=rf"f\.npz: {MISMATCH} \(sha256:"):
        load_arrays(path)


def test_altered_prototypes_are_caught(tmp_path: Path) -> None:
    path = prototypes().save(tmp_path / "prototypes" / "chair.npz", {"kind": "prototypes"})
    assert KeypointPrototypes.load(path).shot_ids == ["a", "b"]
    rewrite_npz(path, lambda a: a["target_distances"].__setitem__((0, 1), 0.5))
    with pytest.raises(CacheError, match=MISMATCH):
        KeypointPrototypes.load(path)
    with pytest.raises(CacheError, match=MISMATCH):
        KeypointPrototypes.read_header(path)


def flip_digit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))


def test_flipped_digit_in_predictions_is_caught_by_reader_and_verify(tmp_path: Path) -> None:
    root = tmp_path / "results" / "run"
    path = predictions(root)
    assert load_json_artifact(path)["predictions"][0]["indices"] == [1234, 77]
    flip_digit(path, "1234", "1235")
    with pytest.raises(CacheError, match=f"{path}: {MISMATCH}"):
        load_json_artifact(path)
    checked, bad = verify_run(root)
    assert checked == 1 and [p for p, _ in bad] == [path]
    verify = [sys.executable, "-m", "bt3d.cli", "verify", str(root)]
    found = subprocess.run(verify, capture_output=True, text=True, cwd=REPO)
    assert found.returncode == 1
    lines = found.stdout.splitlines()
    assert lines[0].startswith(f"bad: {path}: {MISMATCH}") and "delete it to recompute" in lines[0]
    assert lines[1] == f"{root}: 1 artifacts checked, 1 bad"


def test_metrics_and_expected_header_fields_are_checked(tmp_path: Path) -> None:
    path = save_json_atomic(tmp_path / "metrics" / "chair.json", {"miou": [0.25, 0.5]})
    assert load_json_artifact(path)["miou"] == [0.25, 0.5]
    with pytest.raises(CacheError, match="header has no field 'kind'"):
        load_json_artifact(path, {"kind": "metrics"})
    flip_digit(path, "0.25", "0.26")
    with pytest.raises(CacheError, match=MISMATCH):
        load_json_artifact(path)


def test_artifacts_of_the_old_format_are_refused_as_stale(tmp_path: Path) -> None:
    old = tmp_path / "predictions" / "chair" / "shard-0.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"header": {"format_version": 1}, "predictions": []}))
    with pytest.raises(
        CacheError,
        match=rf"header field 'format_version' is 1, expected {FORMAT_VERSION} \(stale",
    ):
        load_json_artifact(old)


# ------------------------------------------------------------------------------- modes


def tiny_mesh() -> Mesh:
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    return Mesh(vertices=vertices, faces=np.array([[0, 1, 2]]), source="tiny")


def torch_cache(path: Path) -> None:
    import torch

    from bt3d.backbones.dinov2_offline import _atomic_torch_save

    _atomic_torch_save({"w": torch.zeros(2)}, path)


def text_file(path: Path) -> None:
    with atomic_write(path, mode="w") as fh:
        fh.write("a,b\n")


WRITERS: dict[str, Callable[[Path], object]] = {
    "atomic_write": text_file,
    "save_arrays": lambda p: save_arrays(p, {"x": np.zeros(2)}, {}),
    "save_json_atomic": lambda p: save_json_atomic(p, {"a": 1}),
    "prototypes": lambda p: prototypes().save(p),
    "write_pcd": lambda p: write_pcd(p, np.zeros((2, 3))),
    "write_ply": lambda p: write_ply(p, tiny_mesh()),
    "write_annotations": lambda p: write_annotations(p, []),
    "write_sample_order": lambda p: write_sample_order(p, [("03001627", "m")]),
    "torch_cache": torch_cache,
}


@pytest.mark.parametrize("name", WRITERS)
@pytest.mark.parametrize(
    ("umask", "mode"),
    [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)],
    ids=["umask022", "umask002", "umask077"],
)
def test_outputs_get_the_mode_the_umask_gives(tmp_path: Path, name: str, umask, mode) -> None:  # noqa: ANN001
    path = tmp_path / "out" / f"{name}.bin"
    previous = os.umask(umask)
    try:
        WRITERS[name](path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


CRASH = """
import os, sys
sys.path.insert(0, {scripts!r})
from pathlib import Path
import numpy as np
import tests.test_artifact_integrity as t
os.replace = lambda *a: os._exit(9)  # killed after writing, before the rename
t.WRITERS[{name!r}](Path({path!r}))
"""


@pytest.mark.parametrize("name", ["save_json_atomic", "prototypes", "write_pcd", "torch_cache"])
def test_temporaries_of_a_killed_writer_are_cleaned_up(tmp_path: Path, name: str) -> None:
    from bt3d.atomic import remove_stale_temporaries

    path = tmp_path / "results" / "run" / "predictions" / "chair" / "shard-0.json"
    code = CRASH.format(scripts=str(REPO / "scripts"), name=name, path=str(path))
    killed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True)
    assert killed.returncode == 9, killed.stderr.decode()[-2000:]
    left = list(path.parent.iterdir())
    assert len(left) == 1 and left[0].name.startswith(f".{path.name}.")
    assert left[0].name.endswith(".tmp") and not path.exists()
    assert [p for p, _ in verify_run(tmp_path / "results" / "run")[1]] == left
    remove_stale_temporaries([str(path)])
    assert list(path.parent.iterdir()) == []
