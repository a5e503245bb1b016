# The dataset folder (KeypointNet layout). Its declared outputs are the per-category
# annotation files and the sample order; meshes and point clouds live beside them. A folder
# that already holds these files (copied, or restored by `dvc pull`) is used as it is.
# KeypointNet is downloaded per category, so adding a category fetches only that one; a
# category whose annotation file exists (downloads write it last) is not downloaded again.

DATASET_OUTPUTS = {
    "annotations": expand(f"{ROOT}/annotations/{{category}}.json", category=CATEGORIES),
    "sample_order": f"{ROOT}/benchmark_indices.csv",
}


if DATASET["name"] == "synthetic":

    rule synthetic:
        output:
            **DATASET_OUTPUTS,
        log:
            f"logs/{RUN}/synthetic.log",
        conda:
            "../../envs/synthetic.yaml"
        params:
            categories=CATEGORIES,
            shapes_per_category=DATASET.get("synthetic", {}).get(
                "shapes_per_category", 24
            ),
            seed=DATASET.get("synthetic", {}).get("seed", 0),
        script:
            "../../scripts/synthetic.py"

else:
    # Files already present are sources, not outputs: no rule is defined for them, so no
    # rerun trigger (e.g. a script newer than a copied folder) can delete and refetch them.
    TO_DOWNLOAD = [
        c for c in CATEGORIES if not os.path.exists(f"{ROOT}/annotations/{c}.json")
    ]

    if TO_DOWNLOAD:

        rule download:
            output:
                annotations=f"{ROOT}/annotations/{{category}}.json",
            log:
                f"logs/{RUN}/download/{{category}}.log",
            wildcard_constraints:
                category="|".join(TO_DOWNLOAD),
            conda:
                "../../envs/download.yaml"
            params:
                repo_id="qq456cvb/KeypointNet",
            script:
                "../../scripts/download.py"

    if not os.path.exists(f"{ROOT}/benchmark_indices.csv"):

        rule download_sample_order:
            output:
                sample_order=f"{ROOT}/benchmark_indices.csv",
            log:
                f"logs/{RUN}/download/sample_order.log",
            conda:
                "../../envs/download.yaml"
            params:
                url=DATASET["sample_order_url"],
                sha256="179001c2434026cb7f0ff05ee7fe58d705baa766d93d0dc3bd3352f7ffa20214",
            script:
                "../../scripts/download.py"
