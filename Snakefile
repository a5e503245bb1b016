# bt3d: few-shot 3D keypoint detection with back-projected 2D features (Back to 3D).
# Run:  snakemake --cores 2                      (default config.yaml: synthetic + offline ViT-S)
#       snakemake --cores 8 --configfile config/paper.yaml
#       snakemake --report results/<run>/report.html
import os

from snakemake.utils import min_version, validate

min_version("9.0")


# config.smk loads the defaults beside this Snakefile (config.yaml, a YAML syntax error named
# by file and line), then validates them with any `--configfile other.yaml` overrides.
include: "workflow/rules/config.smk"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# dataset.name: folder = your own meshes (bt3d detect's job as jobs); else KeypointNet layout
if DATASET["name"] == "folder":

    include: "workflow/rules/folder.smk"

else:

    include: "workflow/rules/data.smk"
    include: "workflow/rules/features.smk"
    include: "workflow/rules/keypoints.smk"
    include: "workflow/rules/evaluate.smk"
    include: "workflow/rules/report.smk"


onstart:
    check_device()
    if DATASET["name"] == "folder":
        PLAN.save(FOLDER_PLAN)


rule all:
    default_target: True
    input:
        [FOLDER_PAGE] if DATASET["name"] == "folder" else all_targets(),
