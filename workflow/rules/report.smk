# Figures for the report: curves per category and pictures of predicted vs true keypoints.
# `snakemake --report results/<run>/report.html` collects them with the tables. The pictures,
# 3D views and worst cases show the reference variant's first shot set on the test shards.

REPORTED = prediction_files(REFERENCE, SHOT_SETS[:1], TEST_PARTS)


rule plot_curves:
    input:
        miou=f"{RESULTS}/tables/miou.csv",
        pck=f"{RESULTS}/tables/pck.csv",
        baseline=f"{RESULTS}/tables/baseline.csv",
    output:
        miou=report(
            f"{RESULTS}/plots/miou.png",
            caption="../report/miou_plot.rst",
            category="Figures",
        ),
        pck=report(
            f"{RESULTS}/plots/pck.png",
            caption="../report/pck_plot.rst",
            category="Figures",
        ),
    log:
        f"logs/{RUN}/plot_curves.log",
    conda:
        "../../envs/plots.yaml"
    params:
        max_threshold=max(EVALUATION["thresholds"]),
    script:
        "../../scripts/plot_curves.py"


rule plot_keypoints:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        predictions=REPORTED,
        points=test_point_clouds,
    output:
        picture=report(
            f"{RESULTS}/plots/keypoints/{{category}}.png",
            caption="../report/keypoints_plot.rst",
            category="Figures",
            subcategory="Keypoints",
            labels={"category": "{category}"},
        ),
    log:
        f"logs/{RUN}/plot_keypoints/{{category}}.log",
    conda:
        "../../envs/plots.yaml"
    params:
        dataset_root=dataset_root_of_input,
    script:
        "../../scripts/plot_keypoints.py"


rule keypoint_views:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        predictions=REPORTED,
        geodesics=geodesic_files(TEST_PARTS),
        points=test_point_clouds,
        labels=labels_file,
    output:
        page=report(
            f"{RESULTS}/views/{{category}}.html",
            caption="../report/keypoint_views.rst",
            category="3D views",
            labels={"category": "{category}"},
        ),
    log:
        f"logs/{RUN}/keypoint_views/{{category}}.log",
    conda:
        "../../envs/viewer.yaml"
    params:
        max_shapes=config["report"]["view_shapes"],
        provenance=provenances("geodesics", "predictions", variant=REFERENCE),
    script:
        "../../scripts/casebook.py"


rule worst_cases:
    input:
        annotations=f"{ROOT}/annotations/{{category}}.json",
        predictions=REPORTED,
        geodesics=geodesic_files(TEST_PARTS),
        points=test_point_clouds,
        labels=labels_file,
    output:
        page=report(
            f"{RESULTS}/worst/{{category}}.html",
            caption="../report/worst_cases.rst",
            category="Worst cases",
            labels={"category": "{category}", "file": "table and picture"},
        ),
        table=report(
            f"{RESULTS}/worst/{{category}}.csv",
            caption="../report/worst_cases.rst",
            category="Worst cases",
            labels={"category": "{category}", "file": "table (CSV)"},
        ),
        picture=f"{RESULTS}/worst/{{category}}.png",
    log:
        f"logs/{RUN}/worst_cases/{{category}}.log",
    conda:
        "../../envs/plots.yaml"
    params:
        keypoints=config["report"]["worst_keypoints"],
        shapes=config["report"]["worst_shapes"],
        provenance=provenances("geodesics", "predictions", variant=REFERENCE),
    script:
        "../../scripts/casebook.py"
