# Per category and part (shots = the labelled shapes; shard-k = every shards-th test shape):
# geodesic matrices (cheap, backbone-independent) and back-projected features (render ->
# backbone -> visibility -> back-projection -> geodesic smoothing). Each job's inputs are the
# point clouds and meshes of its part's shapes, and their content hash is a param, so a
# changed shape reruns exactly the parts that hold it.


rule geodesics:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        sample_order=SAMPLE_ORDER,
        shapes=shape_files,
    output:
        geodesics=part_file("geodesics", "npz"),
    log:
        f"logs/{RUN}/geodesics/{{category}}-{{part}}.log",
    conda:
        "../../envs/geodesics.yaml"
    resources:
        mem_mb=2000,
    params:
        dataset_root=dataset_root_of_input,
        selection=selection_params(),
        geodesic=geodesic_params(),
        provenance=provenances("geodesics"),
        shapes_sha256=shape_digest,
    script:
        "../../scripts/geodesics.py"


rule features:
    input:
        shapes=shape_files,
        geodesics=part_file("geodesics", "npz"),
    output:
        features=part_file("features", "npz"),
    log:
        f"logs/{RUN}/features/{{category}}-{{part}}.log",
    conda:
        "../../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=RESOURCES["features_mem_mb"],
        gpu=1 if is_cuda() else 0,
    params:
        features=feature_params(),
        device=config["device"],
        provenance=provenances("geodesics", "features"),
        shapes_sha256=shape_digest,
    script:
        "../../scripts/features.py"
