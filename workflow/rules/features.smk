# Per category and part (shots = the labelled shapes of every shot set; shard-k = every
# shards-th test shape): geodesic matrices (cheap, backbone- and variant-independent) and,
# per variant that owns them, back-projected features (render -> backbone -> visibility ->
# back-projection -> geodesic smoothing). Each job's inputs are the point clouds and meshes
# of its part's shapes, and their content hash is a param, so a changed shape reruns exactly
# the parts that hold it.


rule geodesics:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        sample_order=SAMPLE_ORDER,
        shapes=shape_files,
    output:
        geodesics=f"{RESULTS}/geodesics/{{category}}/{{part}}.npz",
    log:
        f"logs/{RUN}/geodesics/{{category}}-{{part}}.log",
    conda:
        "../../envs/geodesics.yaml"
    resources:
        mem_mb=2000,
    params:
        dataset_root=dataset_root_of_input,
        selection=selection_params(config),
        geodesic=geodesic_params(),
        provenance=provenances("geodesics"),
        shapes_sha256=shape_digest,
    script:
        "../../scripts/geodesics.py"


rule features:
    input:
        shapes=shape_files,
        geodesics=f"{RESULTS}/geodesics/{{category}}/{{part}}.npz",
    output:
        features=f"{RESULTS}/features/{{variant}}/{{category}}/{{part}}.npz",
    log:
        f"logs/{RUN}/features/{{variant}}/{{category}}-{{part}}.log",
    conda:
        "../../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=RESOURCES["features_mem_mb"],
        gpu=1 if is_cuda() else 0,
    params:
        features=feature_params,
        device=config["device"],
        provenance=provenances("geodesics", "features"),
        shapes_sha256=shape_digest,
    script:
        "../../scripts/features.py"
