# Evaluation per variant and category, every shot set (mIoU, PCK, per-keypoint PCK, random-
# point baseline, and the per-shape counts behind the intervals), then the run's tables and,
# with several variants, their paired comparison.


rule evaluate:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        predictions=prediction_files(),
        geodesics=geodesic_files(QUERY_PARTS),
        labels=labels_file,
    output:
        metrics=f"{RESULTS}/metrics/{{variant}}/{{category}}.json",
    log:
        f"logs/{RUN}/evaluate/{{variant}}/{{category}}.log",
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
        metrics=sorted({path for files in METRICS.values() for path in files}),
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
        metrics=METRICS,
        config=config,
        bootstrap={k: EVALUATION[k] for k in ("bootstrap_resamples", "bootstrap_seed")},
        provenance={
            name: provenance(cfg, "predictions") for name, cfg in VARIANTS.items()
        },
    script:
        "../../scripts/aggregate.py"


rule compare:
    input:
        metrics=sorted({path for files in METRICS.values() for path in files}),
    output:
        table=report(
            f"{RESULTS}/tables/comparison.csv",
            caption="../report/comparison_csv.rst",
            category="Tables",
        ),
        plot=report(
            f"{RESULTS}/plots/comparison.png",
            caption="../report/comparison_plot.rst",
            category="Figures",
        ),
    log:
        f"logs/{RUN}/compare.log",
    conda:
        "../../envs/aggregate.yaml"
    params:
        metrics=METRICS,
        reference=REFERENCE,
        bootstrap={k: EVALUATION[k] for k in ("bootstrap_resamples", "bootstrap_seed")},
        max_threshold=max(EVALUATION["thresholds"]),
    script:
        "../../scripts/compare.py"
