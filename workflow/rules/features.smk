# Per category and shard: geodesic matrices (cheap, backbone-independent) and back-projected
# features (render -> backbone -> visibility -> back-projection -> geodesic smoothing).
# Shards are fixed by config (shape i of a category's selection goes to shard i % shards),
# so the DAG is known before the dataset exists and no checkpoint is needed.


rule geodesics:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        sample_order=SAMPLE_ORDER,
    output:
        geodesics=f"{RESULTS}/geodesics/{{category}}/shard-{{shard}}.npz",
    log:
        f"logs/{RUN}/geodesics/{{category}}-{{shard}}.log",
    conda:
        "../../envs/geodesics.yaml"
    resources:
        mem_mb=2000,
    params:
        selection=selection_params(),
        geodesic=geodesic_params(),
        provenance=provenances("geodesics"),
    script:
        "../../scripts/geodesics.py"


rule features:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        sample_order=SAMPLE_ORDER,
        geodesics=f"{RESULTS}/geodesics/{{category}}/shard-{{shard}}.npz",
    output:
        features=f"{RESULTS}/features/{{category}}/shard-{{shard}}.npz",
    log:
        f"logs/{RUN}/features/{{category}}-{{shard}}.log",
    conda:
        "../../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=RESOURCES.get("features_mem_mb", 4000),
        gpu=1 if is_cuda() else 0,
    params:
        features=feature_params(),
        device=config["device"],
        provenance=provenances("geodesics", "features"),
    script:
        "../../scripts/features.py"
