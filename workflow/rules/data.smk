# The dataset folder (KeypointNet layout). Its declared outputs are the per-category
# annotation files and the sample order; meshes and point clouds live beside them. A folder
# that already holds these files (copied, or restored by `dvc pull`) is used as it is.

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

    rule download:
        output:
            **DATASET_OUTPUTS,
        log:
            f"logs/{RUN}/download.log",
        conda:
            "../../envs/download.yaml"
        params:
            categories=CATEGORIES,
            repo_id="qq456cvb/KeypointNet",
            sample_order_url=(
                "https://raw.githubusercontent.com/wimmerth/back-to-3d-few-shot-keypoints/"
                "5447b255dfed52506a94abdde2ba61d11201bdee/utils/data/benchmark_indices.csv"
            ),
            sample_order_sha256="179001c2434026cb7f0ff05ee7fe58d705baa766d93d0dc3bd3352f7ffa20214",
        script:
            "../../scripts/download.py"
