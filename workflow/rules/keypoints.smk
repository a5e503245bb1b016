# Few-shot keypoint model per category, then candidate optimisation per category and shard.


rule prototypes:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        sample_order=SAMPLE_ORDER,
        features=shard_files("features", "npz"),
        geodesics=shard_files("geodesics", "npz"),
    output:
        prototypes=f"{RESULTS}/prototypes/{{category}}.npz",
    log:
        f"logs/{RUN}/prototypes/{{category}}.log",
    conda:
        "../../envs/prototypes.yaml"
    params:
        selection=selection_params(),
        reduction=config["optimiser"]["prototype_reduction"],
        provenance=provenances("geodesics", "features", "prototypes"),
    script:
        "../../scripts/prototypes.py"


rule optimize:
    input:
        features=f"{RESULTS}/features/{{category}}/shard-{{shard}}.npz",
        geodesics=f"{RESULTS}/geodesics/{{category}}/shard-{{shard}}.npz",
        prototypes=f"{RESULTS}/prototypes/{{category}}.npz",
    output:
        predictions=f"{RESULTS}/predictions/{{category}}/shard-{{shard}}.json",
    log:
        f"logs/{RUN}/optimize/{{category}}-{{shard}}.log",
    conda:
        "../../envs/optimize.yaml"
    threads: 1
    resources:
        mem_mb=RESOURCES.get("optimize_mem_mb", 2000),
        gpu=1 if is_cuda() else 0,
    params:
        optimiser=config["optimiser"],
        device=config["device"],
        provenance=provenances("geodesics", "features", "prototypes", "predictions"),
    script:
        "../../scripts/optimize.py"
