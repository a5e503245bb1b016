# Few-shot keypoint model per variant, category and shot set from its labelled shapes (in the
# shots part), then candidate optimisation per query part: the test shards, and with several
# shot sets also the shots part (minus the shot set's own shapes).


rule prototypes:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        features=lambda w: variant_file(
            "features", w.variant, f"{w.category}/shots.npz"
        ),
        geodesics=f"{RESULTS}/geodesics/{{category}}/shots.npz",
    output:
        prototypes=f"{RESULTS}/prototypes/{{variant}}/{{category}}/{{shot_set}}.npz",
    log:
        f"logs/{RUN}/prototypes/{{variant}}/{{category}}-{{shot_set}}.log",
    conda:
        "../../envs/prototypes.yaml"
    params:
        dataset_root=dataset_root_of_input,
        prototypes=prototype_params,
        backbone=lambda w: {
            k: VARIANTS[w.variant]["backbone"][k] for k in ("name", "layer")
        },
        provenance=provenances("geodesics", "features", "prototypes"),
    script:
        "../../scripts/prototypes.py"


rule optimize:
    input:
        features=lambda w: variant_file(
            "features", w.variant, f"{w.category}/{w.part}.npz"
        ),
        geodesics=f"{RESULTS}/geodesics/{{category}}/{{part}}.npz",
        prototypes=lambda w: variant_file(
            "prototypes", w.variant, f"{w.category}/{w.shot_set}.npz"
        ),
    output:
        predictions=f"{RESULTS}/predictions/{{variant}}/{{category}}/{{shot_set}}/{{part}}.json",
    log:
        f"logs/{RUN}/optimize/{{variant}}/{{category}}-{{shot_set}}-{{part}}.log",
    conda:
        "../../envs/optimize.yaml"
    threads: 1
    resources:
        mem_mb=RESOURCES["optimize_mem_mb"],
        gpu=1 if is_cuda() else 0,
    params:
        optimiser=optimiser_params,
        device=config["device"],
        provenance=provenances("geodesics", "features", "prototypes", "predictions"),
    script:
        "../../scripts/optimize.py"
