# Paths and helpers shared by the rules. Every value that changes an output is passed to
# that rule as params, so `--rerun-triggers params` reruns exactly what a change affects.
import hashlib
import json
import re
import sys

from snakemake.exceptions import WorkflowError

REPO = os.path.dirname(workflow.main_snakefile)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bt3d.backbone_spec import check_backbone_settings
from bt3d.errors import Bt3dError
from bt3d.io import OWNER_MARKER, KeypointNetDataset, dataset_owner
from bt3d.selection import (
    part_files,
    part_names,
    query_part_names,
    select_category,
    shot_set_names,
    test_part_names,
)
from bt3d.settings import (
    FeatureSettings,
    GeodesicSettings,
    OptimiserSettings,
    PrototypeSettings,
)
from bt3d.variants import provenance, selection_params, stage_keys, variants_of

RUN = config["run"]
RESULTS = f"results/{RUN}"
DATASET = config["dataset"]
ROOT = DATASET["root"].rstrip("/")


def sample_order_file():
    """The file that orders a category's shapes for the few-shot split.

    null: <root>/benchmark_indices.csv (the paper's order; downloaded when absent).
    "annotations": the category's annotation file (its record order).
    "auto": the CSV when the dataset has one (the synthetic dataset always does), else the
    annotation file, with a WARNING in the log and a note under miou.md.
    Any other value: a CSV path.
    """
    choice = DATASET["sample_order"]
    csv = f"{ROOT}/benchmark_indices.csv"
    annotations = f"{ROOT}/annotations/{{category}}.json"
    if choice == "annotations":
        return annotations
    if choice == "auto":
        has_csv = DATASET["name"] == "synthetic" or os.path.exists(csv)
        return csv if has_csv else annotations
    return choice or csv


SAMPLE_ORDER = sample_order_file()
CATEGORIES = DATASET["categories"]
PARTS = part_names(config["shards"])  # shots, shard-0, ...: see bt3d/selection.py
TEST_PARTS = test_part_names(config["shards"])
SHOT_SETS = shot_set_names(DATASET["shot_sets"])  # set-0, ...
QUERY_PARTS = query_part_names(DATASET["shot_sets"], config["shards"])
RESOURCES = config["resources"]
EVALUATION = config["evaluation"]


def stop(message):
    """End the run at start with one line on stderr and no traceback: for settings and data
    that can be checked before any job runs."""
    print(message, file=sys.stderr)
    raise SystemExit(1)


def at_start(function, *args):
    """``function(*args)``, a library error ending the run at start (see stop)."""
    try:
        return function(*args)
    except Bt3dError as exc:
        stop(f"{type(exc).__name__}: {exc}")


# The run's variants (bt3d.variants): name -> its whole config; artifacts of a kind live
# under the name of the first variant with the same settings for it (KEYS), so variants
# share them. Without `variants:` the one variant is "bt3d", the config itself.
_VARIANTS = at_start(variants_of, config)
VARIANTS = {v.name: v.config for v in _VARIANTS}
KEYS = stage_keys(_VARIANTS)
REFERENCE = _VARIANTS[0].name


wildcard_constraints:
    category="|".join(CATEGORIES),
    part=r"shots|shard-\d+",
    shot_set=r"set-\d+",
    variant="|".join(re.escape(name) for name in VARIANTS),


def variant_file(kind, variant, rest):
    """Path of an artifact of ``kind`` of ``variant``: under the variant that owns it (metrics
    belong to whoever owns the predictions they score)."""
    owner = KEYS[variant]["predictions" if kind == "metrics" else kind]
    return f"{RESULTS}/{kind}/{owner}/{rest}"


def feature_params(wildcards):
    """Everything that changes the back-projected features of a shape (bt3d.settings)."""
    return FeatureSettings.from_config(VARIANTS[wildcards.variant]).to_dict()


def geodesic_params():
    """Everything that changes a shape's geodesics (bt3d.settings); one for all variants."""
    return GeodesicSettings.from_config(config).to_dict()


def prototype_params(wildcards):
    """How the few-shot model is built from the labelled shapes (bt3d.settings)."""
    return PrototypeSettings.from_config(VARIANTS[wildcards.variant]).to_dict()


def optimiser_params(wildcards):
    """The few-shot model's and the optimiser's settings (bt3d.settings)."""
    return OptimiserSettings.from_config(VARIANTS[wildcards.variant]).to_dict()


def provenances(*kinds, variant=None):
    """Params function: kind -> the settings producing that kind (bt3d.variants.provenance)
    for ``variant``, else the job's ``variant`` wildcard, else the config (geodesics, the
    same for every variant)."""

    def params(wildcards):
        name = variant or wildcards.get("variant")
        cfg = VARIANTS[name] if name else config
        return {kind: provenance(cfg, kind) for kind in kinds}

    return params


def check_categories_present():
    """Stop before any job when the dataset's sample order lacks a configured category.

    Not for the synthetic dataset (the workflow generates it with the configured categories)
    nor when a category's annotation file is its sample order.
    """
    if DATASET["name"] in ("synthetic", "folder") or SAMPLE_ORDER.endswith(".json"):
        return
    if not os.path.exists(SAMPLE_ORDER):
        return
    from bt3d.io import CATEGORY_IDS, read_sample_order

    present = {class_id for class_id, _ in at_start(read_sample_order, SAMPLE_ORDER)}
    names = {cid: name for name, cid in CATEGORY_IDS.items()}
    lacking = [c for c in CATEGORIES if CATEGORY_IDS[c] not in present]
    if lacking:
        listed = sorted(names.get(cid, cid) for cid in present)
        stop(
            f"dataset.categories: {', '.join(lacking)} not in the dataset "
            f"({SAMPLE_ORDER} lists: {', '.join(listed) or 'no category'})"
        )


def is_cuda():
    """True when the config asks for a GPU explicitly, for cluster resources."""
    return config["device"].startswith("cuda")


def geodesic_files(parts):
    """Input function: the job's category's geodesics of ``parts``."""

    def files(wildcards):
        return [f"{RESULTS}/geodesics/{wildcards.category}/{p}.npz" for p in parts]

    return files


def prediction_files(variant=None, shot_sets=SHOT_SETS, parts=QUERY_PARTS):
    """Input function: the predictions of ``variant`` (else the job's) for the job's category,
    every shot set of ``shot_sets`` on every part of ``parts`` it queries."""

    def files(wildcards):
        name = variant or wildcards.variant
        return [
            variant_file("predictions", name, f"{wildcards.category}/{s}/{p}.json")
            for s in shot_sets
            for p in parts
        ]

    return files


def metrics_files(variant):
    """The metrics of ``variant``'s predictions, one file per category."""
    return [variant_file("metrics", variant, f"{c}.json") for c in CATEGORIES]


# The metrics files of each variant, in variant then category order (variants that share
# their predictions read the same files).
METRICS = {name: metrics_files(name) for name in VARIANTS}


_SELECTIONS = {}


def category_selection(category):
    """The category's few-shot split (bt3d.selection.select_category), read from the dataset
    once it exists (waiting for the checkpoint that writes it) and kept while its annotation
    file and sample order are unchanged."""
    wait_for_dataset(category)
    try:
        return select_present(category)
    except Bt3dError as exc:
        raise WorkflowError(f"{type(exc).__name__}: {exc}") from None


def select_present(category):
    """category_selection of a dataset that exists; raises the library's errors."""
    order = SAMPLE_ORDER.format(category=category)
    stamp = tuple(
        os.stat(f).st_mtime_ns for f in (order, f"{ROOT}/annotations/{category}.json")
    )
    key = (category, stamp)
    if key not in _SELECTIONS:
        _SELECTIONS[key] = select_category(
            KeypointNetDataset(ROOT), order, category, selection_params(config)
        )
    return _SELECTIONS[key]


def dataset_root_of_input(wildcards, input):
    """Params function: the dataset folder of the job's ``annotations`` input
    (``<root>/annotations/<category>.json``)."""
    return os.path.dirname(os.path.dirname(input.annotations))


def shape_files(wildcards):
    """Input function: the point cloud and mesh of every shape of the job's part, so that
    editing, replacing, adding or removing one reruns exactly the parts that hold it."""
    selection = category_selection(wildcards.category)
    models = selection.part(wildcards.part, config["shards"])
    return [
        str(p) for p in part_files(KeypointNetDataset(ROOT), wildcards.category, models)
    ]


def test_point_clouds(wildcards):
    """Input function: the point clouds of the category's test shapes."""
    dataset = KeypointNetDataset(ROOT)
    test = category_selection(wildcards.category).test
    return [str(dataset.pcd_path(wildcards.category, m)) for m in test]


_DIGESTS = {}


def file_digest(path):
    """sha256 of a file's content, kept while its size, mtime and inode are unchanged."""
    info = os.stat(path)
    key = (path, info.st_size, info.st_mtime_ns, info.st_ino)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def shape_digest(wildcards):
    """Params function: one hash of the content of the part's shape files. A file replaced
    by one with an older time stamp (a restored backup, a DVC checkout) changes it, and the
    params rerun trigger reruns the part, where the time stamps alone would not."""
    digest = hashlib.sha256()
    for path in shape_files(wildcards):
        digest.update(f"{os.path.relpath(path, ROOT)}:{file_digest(path)}\n".encode())
    return digest.hexdigest()


def labels_file(wildcards):
    """Input function: the dataset's keypoint_labels.json when it has one."""
    wait_for_dataset(wildcards.category)
    path = f"{ROOT}/keypoint_labels.json"
    return [path] if os.path.exists(path) else []


def check_settings_at_start():
    """Settings that cannot work stop the run before any job: backbone name and layer,
    image size vs patch size (of every variant), shots vs the synthetic dataset's size.
    """
    for name, cfg in VARIANTS.items():
        try:
            check_backbone_settings(
                cfg["backbone"]["name"],
                cfg["backbone"]["layer"],
                cfg["render"]["image_size"],
            )
        except Bt3dError as exc:
            where = f"variant {name}: " * (len(VARIANTS) > 1)
            stop(f"{where}{type(exc).__name__}: {exc}")
    if DATASET["name"] == "folder" and (
        config["variants"] or DATASET["shot_sets"] != 1
    ):
        stop(
            "variants / dataset.shot_sets: not used with dataset.name: folder (your own "
            "shapes have one labelled set); remove them, or run a KeypointNet-layout dataset"
        )
    synthetic = DATASET["synthetic"]["shapes_per_category"]
    if (
        DATASET["name"] == "synthetic"
        and synthetic <= DATASET["offset"] + DATASET["shots"] * DATASET["shot_sets"]
    ):
        stop(
            f"dataset.synthetic.shapes_per_category {synthetic} leaves no test shape after "
            f"dataset.offset {DATASET['offset']} + dataset.shots {DATASET['shots']} x "
            f"dataset.shot_sets {DATASET['shot_sets']}; generate more shapes or label fewer"
        )


def check_device():
    """An explicit CUDA device on a machine without one stops the run before any job
    (``onstart``: once the executor is known, only where jobs run locally; a cluster's login
    node need not have the GPUs of its nodes)."""
    device = config["device"]
    if not device.startswith("cuda") or not workflow.local_exec:
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= count:
        stop(
            f"device: {device} was asked for, but PyTorch sees {count} CUDA devices here; "
            "use device: auto or device: cpu, or run on a GPU node"
        )


check_settings_at_start()
check_categories_present()


def all_targets():
    tables = expand(
        f"{RESULTS}/tables/{{name}}",
        name=["miou.csv", "pck.csv", "per_keypoint.csv", "baseline.csv", "miou.md"],
    )
    plots = [f"{RESULTS}/plots/miou.png", f"{RESULTS}/plots/pck.png"]
    if len(VARIANTS) > 1:
        plots += [f"{RESULTS}/tables/comparison.csv", f"{RESULTS}/plots/comparison.png"]
    pictures = expand(
        f"{RESULTS}/plots/keypoints/{{category}}.png", category=CATEGORIES
    )
    report_pages = expand(
        f"{RESULTS}/{{kind}}/{{category}}.html",
        kind=["views", "worst"],
        category=CATEGORIES,
    )
    return tables + plots + pictures + report_pages + [f"{RESULTS}/manifest.json"]
