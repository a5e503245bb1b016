# Few-shot keypoint model per category from its labelled shapes (the shots part), then
# candidate optimisation per category and test shard.


rule prototypes:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        features=f"{RESULTS}/features/{{category}}/shots.npz",
        geodesics=f"{RESULTS}/geodesics/{{category}}/shots.npz",
    output:
        prototypes=f"{RESULTS}/prototypes/{{category}}.npz",
    log:
        f"logs/{RUN}/prototypes/{{category}}.log",
    conda:
        "../../envs/prototypes.yaml"
    params:
        dataset_root=dataset_root_of_input,
        prototypes=prototype_params(),
        backbone={k: config["backbone"][k] for k in ("name", "layer")},
        provenance=provenances("geodesics", "features", "prototypes"),
    script:
        "../../scripts/prototypes.py"


rule optimize:
    input:
        features=f"{RESULTS}/features/{{category}}/{{test_part}}.npz",
        geodesics=f"{RESULTS}/geodesics/{{category}}/{{test_part}}.npz",
        prototypes=f"{RESULTS}/prototypes/{{category}}.npz",
    output:
        predictions=f"{RESULTS}/predictions/{{category}}/{{test_part}}.json",
    log:
        f"logs/{RUN}/optimize/{{category}}-{{test_part}}.log",
    conda:
        "../../envs/optimize.yaml"
    threads: 1
    resources:
        mem_mb=RESOURCES["optimize_mem_mb"],
        gpu=1 if is_cuda() else 0,
    params:
        optimiser=optimiser_params(),
        device=config["device"],
        provenance=provenances("geodesics", "features", "prototypes", "predictions"),
    script:
        "../../scripts/optimize.py"
