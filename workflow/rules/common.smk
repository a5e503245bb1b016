# Paths and helpers shared by the rules. Every value that changes an output is passed to
# that rule as params, so `--rerun-triggers params` reruns exactly what a change affects.
import sys

from snakemake.exceptions import WorkflowError

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
    choice = DATASET.get("sample_order")
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
SHARDS = list(range(config["shards"]))
RESOURCES = config.get("resources", {})
EVALUATION = config["evaluation"]


wildcard_constraints:
    category="|".join(CATEGORIES),
    shard=r"\d+",


def selection_params():
    """Which shapes of a category are used and how they are split into shards."""
    return {
        "shots": DATASET["shots"],
        "offset": DATASET["offset"],
        "max_test_shapes": DATASET.get("max_test_shapes"),
        "missing_shapes": DATASET.get("missing_shapes", "error"),
        "shards": config["shards"],
    }


def feature_params():
    """Everything that changes the back-projected features of a shape."""
    return {
        "render": config["render"],
        "backbone": config["backbone"],
        "sampling": config["features"]["sampling"],
        "normalise": DATASET.get("normalise", False),
        "sigma": config["features"]["sigma"],
    }


def geodesic_params():
    return {
        "knn": config["features"]["knn"],
        "unreachable": config["features"]["unreachable"],
        "normalise": DATASET.get("normalise", False),
    }


def provenance(kind):
    """The params that produce an artifact kind (its header's config hash is their hash).

    geodesics < features < prototypes < predictions: each kind adds its own settings to
    those of the artifacts it is computed from.
    """
    params = {"selection": selection_params(), "geodesic": geodesic_params()}
    if kind == "geodesics":
        return params
    params["features"] = feature_params()
    if kind == "features":
        return params
    params["reduction"] = config["optimiser"]["prototype_reduction"]
    if kind == "prototypes":
        return params
    params["optimiser"] = config["optimiser"]
    if kind == "predictions":
        return params
    raise ValueError(f"unknown artifact kind {kind!r}")


def provenances(*kinds):
    """Params of a rule: kind -> the params producing that kind, for each kind it touches."""
    return {kind: provenance(kind) for kind in kinds}


def check_categories_present():
    """Stop before any job when the dataset's sample order lacks a configured category.

    Not for the synthetic dataset (the workflow generates it with the configured categories)
    nor when a category's annotation file is its sample order.
    """
    if DATASET["name"] == "synthetic" or SAMPLE_ORDER.endswith(".json"):
        return
    if not os.path.exists(SAMPLE_ORDER):
        return
    repo = os.path.dirname(workflow.main_snakefile)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from bt3d.io import CATEGORY_IDS

    with open(SAMPLE_ORDER, encoding="utf-8") as fh:
        present = {
            line.split(",")[0].strip() for line in fh.readlines()[1:] if "," in line
        }
    names = {cid: name for name, cid in CATEGORY_IDS.items()}
    lacking = [c for c in CATEGORIES if CATEGORY_IDS[c] not in present]
    if lacking:
        listed = sorted(names.get(cid, cid) for cid in present)
        raise WorkflowError(
            f"dataset.categories: {', '.join(lacking)} not in the dataset "
            f"({SAMPLE_ORDER} lists: {', '.join(listed) or 'no category'})"
        )


def is_cuda():
    """True when the config asks for a GPU explicitly, for cluster resources."""
    return config["device"].startswith("cuda")


def shard_files(kind, ext):
    """Input function: every shard file of one kind for the job's category."""

    def files(wildcards):
        return expand(
            f"{RESULTS}/{kind}/{{category}}/shard-{{shard}}.{ext}",
            category=wildcards.category,
            shard=SHARDS,
        )

    return files


check_categories_present()


def all_targets():
    tables = expand(
        f"{RESULTS}/tables/{{name}}",
        name=["miou.csv", "pck.csv", "per_keypoint.csv", "baseline.csv", "miou.md"],
    )
    plots = [f"{RESULTS}/plots/miou.png", f"{RESULTS}/plots/pck.png"]
    pictures = expand(
        f"{RESULTS}/plots/keypoints/{{category}}.png", category=CATEGORIES
    )
    return tables + plots + pictures + [f"{RESULTS}/manifest.json"]
