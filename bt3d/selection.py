"""Which shapes of a category a run uses, and how they are split into the workflow's parts.

The few-shot split (:func:`few_shot_split`) of a category's sample order gives the
labelled shapes and the test shapes. With ``shot_sets`` K, the labelled shapes are K blocks
of ``shots`` rows: shot set k labels block k and queries every other selected shape (the
other blocks and the test shapes), so each shape's features serve every shot set. The
workflow computes them in parts: ``shots`` holds the labelled shapes of every shot set, and
test shape ``i`` belongs to ``shard-{i % shards}``. Prototypes therefore depend only on
``shots``, and a change to one test shape's files touches only its shard.
The same function serves the Snakefile (to know each part's files before any job runs) and
the rules' scripts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bt3d.errors import ConfigError, DataError
from bt3d.integrity import describe_missing
from bt3d.io import KeypointNetDataset, class_id_of, read_sample_order

SHOTS = "shots"
MAX_LISTED = 5  # paths listed in a "files missing" message


def few_shot_split(
    order: Sequence[tuple[str, str]],
    class_id: str,
    shots: int,
    offset: int = 0,
    max_test: int | None = None,
    available: Iterable[str] | None = None,
    shot_sets: int = 1,
) -> tuple[list[str], list[str]]:
    """The paper's few-shot protocol on a sample order.

    The rows of ``class_id`` are taken in order, dropping rows whose model is not in
    ``available`` (when given) and repeated models; after skipping ``offset`` rows, the next
    ``shots * shot_sets`` are the labelled shapes (``shot_sets`` blocks of ``shots``) and
    every later row is a test shape (the first ``max_test`` of them when given).

    Returns:
        (labelled model ids, test model ids).

    Raises:
        DataError: fewer than ``shots * shot_sets`` shapes of the category remain.
    """
    if shots < 1 or shot_sets < 1 or offset < 0 or (max_test is not None and max_test < 0):
        raise ConfigError(
            f"few-shot split needs shots >= 1, shot_sets >= 1, offset >= 0, max_test >= 0; got "
            f"shots={shots}, shot_sets={shot_sets}, offset={offset}, max_test={max_test}"
        )
    keep = None if available is None else set(available)
    ids: list[str] = []
    seen: set[str] = set()
    for c, m in order:
        if c == class_id and m not in seen and (keep is None or m in keep):
            seen.add(m)
            ids.append(m)
    labelled_count = shots * shot_sets
    if len(ids) < offset + labelled_count:
        sets = f" x shot_sets {shot_sets}" * (shot_sets > 1)
        raise DataError(
            f"sample order: class {class_id} has {len(ids)} usable shapes, fewer than "
            f"offset {offset} + shots {shots}{sets}"
        )
    labelled = ids[offset : offset + labelled_count]
    test = ids[offset + labelled_count :]
    return labelled, test if max_test is None else test[:max_test]


def part_names(shards: int) -> list[str]:
    """``["shots", "shard-0", ..., "shard-{shards-1}"]``."""
    return [SHOTS, *test_part_names(shards)]


def test_part_names(shards: int) -> list[str]:
    """The parts that hold test shapes: ``["shard-0", ...]``."""
    return [f"shard-{k}" for k in range(shards)]


def query_part_names(shot_sets: int, shards: int) -> list[str]:
    """The parts a shot set's model is run on: the test shards, and with several shot sets
    also ``shots`` (the other shot sets' labelled shapes)."""
    return [SHOTS] * (shot_sets > 1) + test_part_names(shards)


def shot_set_names(shot_sets: int) -> list[str]:
    """``["set-0", ..., "set-{shot_sets-1}"]``: the file names of a shot set's artifacts."""
    return [f"set-{k}" for k in range(shot_sets)]


def shot_set_index(name: str) -> int:
    """``"set-3"`` -> 3."""
    if not name.startswith("set-") or not name.removeprefix("set-").isdigit():
        raise ConfigError(f"{name!r} is not a shot set name (set-<k>)")
    return int(name.removeprefix("set-"))


@dataclass(frozen=True)
class CategorySelection:
    """The shapes of one category that a run uses.

    ``labelled`` (every shot set's, block after block) and ``test`` are model ids in sample
    order; ``shots`` is the size of one shot set; ``missing`` lists the point clouds and
    meshes of annotated shapes that do not exist (left out with ``missing_shapes: skip``);
    ``order_file`` is the file whose order decided the split.
    """

    category: str
    labelled: list[str]
    test: list[str]
    missing: list[Path]
    order_file: str
    shots: int

    @property
    def shot_sets(self) -> int:
        return len(self.labelled) // self.shots

    def shot_set(self, k: int) -> list[str]:
        """Model ids labelled by shot set ``k``."""
        if not 0 <= k < self.shot_sets:
            raise ConfigError(f"shot set {k} does not exist; there are {self.shot_sets}")
        return self.labelled[k * self.shots : (k + 1) * self.shots]

    def queries(self, k: int) -> list[str]:
        """Model ids shot set ``k`` is evaluated on: every selected shape it does not label."""
        own = set(self.shot_set(k))
        return [m for m in self.labelled if m not in own] + list(self.test)

    @property
    def skipped(self) -> int:
        """Annotated shapes left out for lack of files (a shape's files share its id)."""
        return len({p.stem for p in self.missing})

    def part(self, name: str, shards: int) -> list[str]:
        """Model ids of one part (see the module docstring)."""
        if name == SHOTS:
            return list(self.labelled)
        if name not in test_part_names(shards):
            raise ConfigError(f"unknown part {name!r}; expected one of {part_names(shards)}")
        k = int(name.removeprefix("shard-"))
        return [m for i, m in enumerate(self.test) if i % shards == k]


def select_category(
    dataset: KeypointNetDataset,
    order_file: str | os.PathLike[str],
    category: str,
    selection: Mapping[str, Any],
) -> CategorySelection:
    """The few-shot split of a category, as the workflow's settings ask.

    Args:
        dataset: the KeypointNet-layout folder.
        order_file: the sample-order CSV, or the category's annotation file (``.json``: its
            record order is the order).
        category: category name.
        selection: ``shots``, ``shot_sets``, ``offset``, ``max_test_shapes`` and
            ``missing_shapes`` (``skip`` leaves out annotated shapes whose files are absent,
            ``error`` refuses).

    Raises:
        DataError: files missing with ``missing_shapes: error``; too few shapes for the shots;
            no test shape left. Each message names the files and the settings to change.
    """
    order_path = Path(order_file)
    annotated = list(dataset.annotations(category))
    missing = [p.relative_to(dataset.root) for p in dataset.missing_files([category])]
    if missing and selection["missing_shapes"] == "error":
        raise DataError(
            f"{dataset.root}: dataset is incomplete for {category}: missing "
            f"{describe_missing(missing, MAX_LISTED)}. Restore them (e.g. `dvc pull`), or set "
            "dataset.missing_shapes: skip to leave those shapes out"
        )
    lacking = {p.stem for p in missing}
    available = [m for m in annotated if m not in lacking]
    if order_path.suffix == ".json":
        order = dataset.annotation_order(category)
    else:
        order = read_sample_order(order_path)
    files = " + ".join(dict.fromkeys([str(order_path), str(dataset.annotation_path(category))]))
    skipped = f"; {len(lacking)} annotated shapes lack their files and were skipped" * bool(lacking)
    shots, offset, max_test, shot_sets = (
        selection["shots"],
        selection["offset"],
        selection["max_test_shapes"],
        selection["shot_sets"],
    )
    try:
        labelled, test = few_shot_split(
            order, class_id_of(category), shots, offset=offset, max_test=max_test,
            available=available, shot_sets=shot_sets,
        )  # fmt: skip
    except DataError as exc:
        if not str(exc).startswith("sample order:"):
            raise
        raise DataError(
            f"{files}: {category}: {str(exc).removeprefix('sample order: ')} "
            f"(dataset.shots{' / dataset.shot_sets' * (shot_sets > 1)} / dataset.offset){skipped}"
        ) from exc
    if not test:
        why = (
            "dataset.max_test_shapes is 0"
            if max_test == 0
            else f"all usable shapes are taken by offset {offset} + shots {shots}"
            + f" x shot_sets {shot_sets}" * (shot_sets > 1)
            + "; lower dataset.shots, dataset.shot_sets or dataset.offset, or add shapes"
        )
        raise DataError(f"{files}: {category}: no test shape left: {why}{skipped}")
    return CategorySelection(category, labelled, test, missing, str(order_path), shots)


def part_files(dataset: KeypointNetDataset, category: str, model_ids: list[str]) -> list[Path]:
    """The point cloud and mesh of each shape, in that order: what a part's jobs read."""
    return [
        path
        for m in model_ids
        for path in (dataset.pcd_path(category, m), dataset.mesh_path(category, m))
    ]
