"""The results layout of a run (``results/<run>/``) and reading its artifacts as jobs do.

Stages, each computed from the one before (``<variant>``: the variant owning the artifact,
:mod:`bt3d.variants`; ``<shot set>``: ``set-k``)::

    geodesics/<category>/<part>.npz, features/<variant>/<category>/<part>.npz
      -> prototypes/<variant>/<category>/<shot set>.npz
      -> predictions/<variant>/<category>/<shot set>/<part>.json
      -> metrics/<variant>/<category>.json -> tables/*, plots/*, manifest.json

An artifact's header carries ``config_hash`` = :func:`bt3d.cache.config_hash` of the settings
that produce its kind (:class:`Provenance`). A job reads its inputs through :func:`read_part`
and friends: an artifact that is corrupt or whose header does not match is deleted with the
files computed from it (:func:`dependents`) and the job fails with ``CacheError`` naming it,
so a plain rerun rebuilds exactly that file and what depends on it (Snakemake does not
rebuild a missing intermediate file whose consumers are up to date, hence the deletion).
``bt3d verify`` checks a whole run (:func:`verify_run`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bt3d.cache import config_hash, load_arrays, load_json_artifact
from bt3d.errors import CacheError
from bt3d.fewshot import KeypointPrototypes

RESULT_STAGES = ("geodesics", "features", "prototypes", "predictions", "metrics")


@dataclass(frozen=True)
class Provenance:
    """What a job's artifacts of each kind must say in their header.

    Attributes:
        category: the job's category.
        params: artifact kind -> the settings producing it (the rule's
            ``params.provenance``, see ``workflow/rules/common.smk`` ``provenance``).
    """

    category: str
    params: Mapping[str, Any]

    def header(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Header fields of an artifact of ``kind`` (kind, category, config hash, ``fields``)."""
        return {
            "kind": kind,
            "category": self.category,
            "config_hash": config_hash(self.params[kind]),
            **fields,
        }


@contextlib.contextmanager
def rebuild_on_error(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a CacheError reading the artifact ``path`` into its deletion and a clear error."""
    try:
        yield
    except CacheError as exc:
        others = remove_with_dependents(path)
        raise CacheError(
            f"{exc}; deleted {path} and {len(others)} files computed from it, rerun to rebuild them"
        ) from exc


def read_part(path: str, expected: Mapping[str, Any], names: Sequence[str]) -> tuple[dict, dict]:
    """``(arrays, header)`` of a part's ``.npz`` artifact whose header must match
    ``expected`` and which must hold the arrays ``names``."""
    with rebuild_on_error(path):
        arrays, header = load_arrays(path, expected)
        lacking = [n for n in names if n not in arrays]
        if lacking:
            raise CacheError(f"{path}: artifact lacks arrays {lacking}")
    return arrays, header


def read_geodesic_part(path: str, expected: Mapping[str, Any]) -> dict[str, Any]:
    """A geodesics part (``shots`` or ``shard-k``): ``model_ids`` list, ``labelled`` (S,),
    ``geodesic`` (S, N, N) float16 normalised, ``scale`` (S,) (raw = normalised * scale),
    ``skipped_shapes`` (the category's annotated shapes left out for lack of files),
    ``sample_order`` (the file that ordered the split)."""
    arrays, header = read_part(path, expected, ("model_ids", "labelled", "geodesic", "scale"))
    return {
        "model_ids": [str(m) for m in arrays["model_ids"]],
        "labelled": arrays["labelled"].astype(bool),
        "geodesic": arrays["geodesic"],
        "scale": arrays["scale"],
        "skipped_shapes": int(header["skipped_shapes"]),
        "sample_order": str(header["sample_order"]),
    }


def read_feature_part(
    path: str, expected: Mapping[str, Any], geodesics: str, model_ids: list[str]
) -> dict[str, np.ndarray]:
    """A features part's arrays: ``features`` (S, N, C) float32, ``counts`` (S, N) and, for
    the ``shots`` part, ``unsmoothed`` (S, N, C); checked to hold the same shapes in the same
    order as the geodesics part ``geodesics`` (``model_ids``)."""
    arrays, _ = read_part(path, expected, ("model_ids", "features", "counts"))
    ids = [str(m) for m in arrays["model_ids"]]
    if ids != model_ids:
        with rebuild_on_error(path):
            raise CacheError(f"{path}: model ids {ids[:3]} differ from {geodesics} {model_ids[:3]}")
    return arrays


def read_json_part(path: str, expected: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A sealed JSON artifact (predictions, metrics) whose header must match ``expected``."""
    with rebuild_on_error(path):
        return load_json_artifact(path, expected)


def part_of(path: str | os.PathLike[str]) -> str:
    """The part (``shots``, ``shard-k``) an artifact belongs to: its file name's stem."""
    return Path(path).stem


def prediction_header(provenance: Provenance, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The header a predictions artifact ``.../<shot set>/<part>.json`` must carry."""
    return provenance.header("predictions", part=part_of(path), shot_set=Path(path).parent.name)


def decoded(geodesic: np.ndarray) -> np.ndarray:
    """(N, N) float64 of a stored float16 geodesic matrix (as every stage uses it)."""
    return geodesic.astype(np.float64)


def verify_artifact(path: str | os.PathLike[str]) -> str | None:
    """The problem of one run artifact, or None when it reads back cleanly.

    ``.npz``: a zip with a ``__header__`` of the current format whose content matches its
    checksum (prototypes: also every field they need); ``.json``: a sealed JSON artifact of
    the current format. Only self-consistency is checked: whether the settings match a config
    is the consuming rule's check.
    """
    src = Path(path)
    try:
        if src.suffix == ".npz" and (stage_of(src) or ("",))[0] == "prototypes":
            KeypointPrototypes.load(src)
        elif src.suffix == ".npz":
            load_arrays(src)
        elif src.suffix == ".json":
            load_json_artifact(src)
    except CacheError as exc:
        return str(exc)
    return None


# Layout of each stage's artifacts below results/<run>/<stage>/ (``None``: the file's stem is
# the category; otherwise the folder named ``category`` is the artifact's parents[index]).
STAGE_LAYOUT = {
    "geodesics": ("<category>/<part>.npz", 0),
    "features": ("<variant>/<category>/<part>.npz", 0),
    "prototypes": ("<variant>/<category>/<shot set>.npz", 0),
    "predictions": ("<variant>/<category>/<shot set>/<part>.json", 1),
    "metrics": ("<variant>/<category>.json", None),
}


def stage_of(path: str | os.PathLike[str]) -> tuple[str, str, Path] | None:
    """``(stage, category, results/<run> folder)`` of an artifact of the workflow's layout
    (:data:`STAGE_LAYOUT`), or None for any other path."""
    src = Path(path)
    for stage, (pattern, index) in STAGE_LAYOUT.items():
        depth = pattern.count("/")
        if len(src.parents) > depth + 1 and src.parents[depth].name == stage:
            category = src.stem if index is None else src.parents[index].name
            return stage, category, src.parents[depth + 1]
    return None


def dependents(path: str | os.PathLike[str]) -> list[Path]:
    """Existing files of a ``results/<run>`` folder computed from the artifact ``path``.

    The stages (:data:`STAGE_LAYOUT`): geodesics and features -> prototypes -> predictions
    -> metrics and ``plots/keypoints/<category>.png`` -> ``tables/*``, ``plots/*.png``,
    ``manifest.json``. Every variant's later artifacts of the category count (which
    variants share an artifact is the config's business, not the folder's). Deleting an
    artifact together with these makes a plain ``snakemake`` rerun rebuild it (Snakemake
    does not rebuild a missing intermediate file whose consumers are up to date). A path
    outside that layout has no dependents.
    """
    found_stage = stage_of(path)
    if found_stage is None:
        return []
    stage, category, root = found_stage
    level = list(STAGE_LAYOUT).index(stage)
    found: list[Path] = []
    if level <= 1:
        found += sorted((root / "prototypes").glob(f"*/{category}/*.npz"))
    if level <= 2:
        found += sorted((root / "predictions").glob(f"*/{category}/*/*.json"))
    if level <= 3:
        found += sorted((root / "metrics").glob(f"*/{category}.json"))
        found += [root / "plots" / "keypoints" / f"{category}.png"]
    found += sorted((root / "tables").glob("*")) + [root / "manifest.json"]
    found += sorted((root / "plots").glob("*.png"))
    return [f for f in found if f.is_file() and f != Path(path)]


def remove_with_dependents(path: str | os.PathLike[str]) -> list[Path]:
    """Delete ``path`` and its :func:`dependents`; returns the dependents deleted."""
    removed = dependents(path)
    Path(path).unlink(missing_ok=True)
    for f in removed:
        f.unlink(missing_ok=True)
    return removed


def _in_results_layout(root: Path, path: Path) -> bool:
    """True for the artifacts of a ``results/<run>`` folder: files under its stage folders
    and its top-level ``manifest.json`` (and their temporaries)."""
    parts = path.relative_to(root).parts
    return parts[0] in RESULT_STAGES or (len(parts) == 1 and "manifest.json" in parts[0])


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
    if not any((root / stage).is_dir() for stage in RESULT_STAGES):
        raise CacheError(
            f"{root}: not a bt3d results folder (none of {', '.join(RESULT_STAGES)}); give "
            "results/<run>"
        )
    bad: list[tuple[Path, str]] = []
    checked = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or not _in_results_layout(root, path):
            continue  # never judge (or delete) a file the workflow does not write
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
