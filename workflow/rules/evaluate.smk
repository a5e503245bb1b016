# Evaluation per category (mIoU, PCK, per-keypoint PCK, random-point baseline) and the
# tables of the run.


rule evaluate:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        predictions=test_part_files("predictions", "json"),
        geodesics=test_part_files("geodesics", "npz"),
        labels=labels_file,
    output:
        metrics=f"{RESULTS}/metrics/{{category}}.json",
    log:
        f"logs/{RUN}/evaluate/{{category}}.log",
    conda:
        "../../envs/evaluate.yaml"
    params:
        dataset_root=dataset_root_of_input,
        thresholds=EVALUATION["thresholds"],
        baseline_seed=EVALUATION["baseline_seed"],
        provenance=provenances("geodesics", "predictions"),
    script:
        "../../scripts/evaluate.py"


rule aggregate:
    input:
        metrics=expand(f"{RESULTS}/metrics/{{category}}.json", category=CATEGORIES),
    output:
        miou=report(
            f"{RESULTS}/tables/miou.csv",
            caption="../report/miou_csv.rst",
            category="Tables",
        ),
        pck=report(
            f"{RESULTS}/tables/pck.csv",
            caption="../report/pck_csv.rst",
            category="Tables",
        ),
        per_keypoint=report(
            f"{RESULTS}/tables/per_keypoint.csv",
            caption="../report/per_keypoint_csv.rst",
            category="Tables",
        ),
        baseline=report(
            f"{RESULTS}/tables/baseline.csv",
            caption="../report/baseline_csv.rst",
            category="Tables",
        ),
        markdown=report(
            f"{RESULTS}/tables/miou.md",
            caption="../report/miou_md.rst",
            category="Tables",
        ),
        manifest=f"{RESULTS}/manifest.json",
    log:
        f"logs/{RUN}/aggregate.log",
    conda:
        "../../envs/aggregate.yaml"
    params:
        categories=CATEGORIES,
        config=config,
        provenance=provenances("predictions"),
    script:
        "../../scripts/aggregate.py"
