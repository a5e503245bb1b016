# Figures for the report: curves per category and pictures of predicted vs true keypoints.
# `snakemake --report results/<run>/report.html` collects them with the tables.


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
        predictions=test_part_files("predictions", "json"),
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
