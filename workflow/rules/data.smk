# The dataset folder (KeypointNet layout): annotation files, sample order, meshes and point
# clouds. A folder that already holds a category's annotation file (the user's own, a copy,
# or one restored by `dvc pull`) is read as it is and never written to. The workflow writes
# only into a dataset folder it creates itself (the synthetic dataset, or a download into a
# new folder): such a folder carries bt3d.io.OWNER_MARKER, and a folder without it is
# refused at start before anything is written. The rules that write a dataset are checkpoints,
# so each shard's shape files become job inputs once they exist (see common.smk).

WRITER = "synthetic" if DATASET["name"] == "synthetic" else "download"


def dataset_writable_or_stop(why):
    """Stop at start unless ROOT is absent, empty, or was created by this rule."""
    if not os.path.isdir(ROOT) or not os.listdir(ROOT):
        return
    owner = at_start(dataset_owner, ROOT)
    if owner == WRITER:
        return
    found = sorted(os.listdir(ROOT))[:3]
    made = f"was written by bt3d's {owner} rule" if owner else "was not created by bt3d"
    stop(
        f"dataset.root {ROOT} {made} (it holds {', '.join(found)}); the workflow would write "
        f"into it to {why}. {FIX_HINT[WRITER]}"
    )


FIX_HINT = {
    "synthetic": "To use your folder, set dataset.name: keypointnet; to generate the "
    "synthetic dataset, point dataset.root at a new folder",
    "download": "bt3d never adds files to a folder it did not create: put the missing files "
    "there yourself, leave the category out of dataset.categories (or set "
    "dataset.sample_order: auto), or point dataset.root at a new folder for the download",
}


if DATASET["name"] == "synthetic":
    dataset_writable_or_stop("generate the synthetic dataset")

    checkpoint synthetic:
        output:
            annotations=expand(
                f"{ROOT}/annotations/{{category}}.json", category=CATEGORIES
            ),
            sample_order=f"{ROOT}/benchmark_indices.csv",
            labels=f"{ROOT}/keypoint_labels.json",
            owner=f"{ROOT}/{OWNER_MARKER}",
        log:
            f"logs/{RUN}/synthetic.log",
        conda:
            "../../envs/synthetic.yaml"
        params:
            dataset_root=lambda w, output: os.path.dirname(output.sample_order),
            categories=CATEGORIES,
            shapes_per_category=DATASET["synthetic"]["shapes_per_category"],
            seed=DATASET["synthetic"]["seed"],
        script:
            "../../scripts/synthetic.py"

    def wait_for_dataset(category):
        checkpoints.synthetic.get()

else:
    # Files already present are sources, not outputs: no rule is defined for them, so no
    # rerun trigger (e.g. a script newer than a copied folder) can delete and refetch them.
    TO_DOWNLOAD = [
        c for c in CATEGORIES if not os.path.exists(f"{ROOT}/annotations/{c}.json")
    ]
    ORDER_TO_DOWNLOAD = (
        SAMPLE_ORDER == f"{ROOT}/benchmark_indices.csv"
        and not os.path.exists(SAMPLE_ORDER)
    )
    if TO_DOWNLOAD or ORDER_TO_DOWNLOAD:
        lacking = [f"annotations/{c}.json" for c in TO_DOWNLOAD]
        dataset_writable_or_stop(
            "download "
            + ", ".join(lacking + ["benchmark_indices.csv"] * ORDER_TO_DOWNLOAD)
        )

    if TO_DOWNLOAD:

        checkpoint download:
            output:
                annotations=f"{ROOT}/annotations/{{category}}.json",
            log:
                f"logs/{RUN}/download/{{category}}.log",
            wildcard_constraints:
                category="|".join(TO_DOWNLOAD),
            conda:
                "../../envs/download.yaml"
            params:
                dataset_root=lambda w, output: os.path.dirname(
                    os.path.dirname(output.annotations)
                ),
                repo_id="qq456cvb/KeypointNet",
            script:
                "../../scripts/download.py"

    if ORDER_TO_DOWNLOAD:

        checkpoint download_sample_order:
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

    def wait_for_dataset(category):
        if category in TO_DOWNLOAD:
            checkpoints.download.get(category=category)
        if ORDER_TO_DOWNLOAD:
            checkpoints.download_sample_order.get()

    # The folder exists with every file the run reads: check the selection now, so that
    # bad settings or missing files stop the run before any job.
    for _category in CATEGORIES:
        if _category not in TO_DOWNLOAD and not ORDER_TO_DOWNLOAD:
            at_start(select_present, _category)
