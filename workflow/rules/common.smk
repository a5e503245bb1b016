# Paths and helpers shared by the rules. Every value that changes an output is passed to
# that rule as params, so `--rerun-triggers params` reruns exactly what a change affects.


RUN = config["run"]
RESULTS = f"results/{RUN}"
DATASET = config["dataset"]
ROOT = DATASET["root"].rstrip("/")
SAMPLE_ORDER = DATASET.get("sample_order") or f"{ROOT}/benchmark_indices.csv"
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
        "shards": config["shards"],
    }


def feature_params():
    """Everything that changes the back-projected features of a shape."""
    return {
        "render": config["render"],
        "backbone": config["backbone"],
        "sampling": config["features"]["sampling"],
        "sigma": config["features"]["sigma"],
    }


def geodesic_params():
    return {
        "knn": config["features"]["knn"],
        "unreachable": config["features"]["unreachable"],
    }


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


def all_targets():
    tables = expand(
        f"{RESULTS}/tables/{{name}}",
        name=["miou.csv", "pck.csv", "per_keypoint.csv", "baseline.csv", "miou.md"],
    )
    plots = [f"{RESULTS}/plots/miou.png", f"{RESULTS}/plots/pck.png"]
    pictures = expand(
        f"{RESULTS}/plots/keypoints/{{category}}.png", category=CATEGORIES
    )
    return tables + plots + pictures
