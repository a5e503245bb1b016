# dataset.name: folder: your own meshes, the job of `bt3d detect` as Snakemake jobs on the same
# library functions (bt3d/folder.py on bt3d/detect.py). At start, every check bt3d detect runs
# (one line per bad value, naming the key and file; nothing written). Then features per mesh
# (named by the mesh's geometry hash and the feature settings, in OUT/.cache as bt3d detect's
# cache: an unchanged mesh is never recomputed), prototypes from the labelled meshes,
# predictions per chunk of folder meshes, and OUT/<stem>.csv/.pp/.json + index.html.
from pathlib import Path

from bt3d.detect import CACHE_DIR
from bt3d.folder import PROTOTYPES, FolderPlan, plan_folder

FOLDER = DATASET["folder"]
FOLDER_OUT = str(Path(FOLDER["out"] or f"{RESULTS}/keypoints"))  # "./x/" -> "x"
FOLDER_CACHE = f"{FOLDER_OUT}/{CACHE_DIR}"
FOLDER_PAGE = f"{FOLDER_OUT}/index.html"
FOLDER_PLAN = f"{FOLDER_CACHE}/folder/plan.json"  # saved at onstart, for cluster jobs
if workflow.is_main_process:
    try:
        PLAN = plan_folder(config, Path(FOLDER_OUT))
    except Bt3dError as exc:
        stop(str(exc))  # one line per bad value, naming the key and the file
    for note in PLAN.notes:
        print(note, file=sys.stderr)
else:  # a cluster job: the plan its main process checked and saved
    PLAN = at_start(FolderPlan.load, FOLDER_PLAN)
FEATURE_MESHES = {Path(f).stem: m for f, m in PLAN.features.items()}
LABELLED = [p for pair in PLAN.pairs for p in pair]
TARGETS = list(PLAN.target_features)
CHUNKS = PLAN.chunks


wildcard_constraints:
    feature_key=r"[0-9a-f]+-[0-9a-f]+",
    chunk=r"\d+",


rule folder_features:
    input:
        mesh=lambda wildcards: FEATURE_MESHES[wildcards.feature_key],
    output:
        features=f"{FOLDER_CACHE}/{{feature_key}}.npz",
    log:
        f"logs/{RUN}/folder/features-{{feature_key}}.log",
    conda:
        "../../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=RESOURCES["features_mem_mb"],
        gpu=1 if is_cuda() else 0,
    params:
        settings=PLAN.feature_settings(),
        cache=lambda wildcards, output: os.path.dirname(output.features),
    script:
        "../../scripts/folder_features.py"


rule folder_prototypes:
    input:
        labelled=LABELLED,
        features=PLAN.labelled_features,
    output:
        prototypes=f"{FOLDER_CACHE}/{PROTOTYPES}",
    log:
        f"logs/{RUN}/folder/prototypes.log",
    conda:
        "../../envs/features.yaml"
    params:
        settings=PLAN.settings,
        cache=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        labelled=LABELLED,
    script:
        "../../scripts/folder_prototypes.py"


rule folder_predict:
    input:
        meshes=lambda wildcards: CHUNKS[int(wildcards.chunk)],
        features=lambda wildcards: PLAN.chunk_features(int(wildcards.chunk)),
        prototypes=f"{FOLDER_CACHE}/{PROTOTYPES}",
    output:
        predictions=f"{FOLDER_CACHE}/folder/chunk-{{chunk}}.json",
    log:
        f"logs/{RUN}/folder/predict-{{chunk}}.log",
    conda:
        "../../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=RESOURCES["optimize_mem_mb"],
        gpu=1 if is_cuda() else 0,
    params:
        settings=PLAN.settings,
        cache=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        meshes=lambda wildcards: CHUNKS[int(wildcards.chunk)],
    script:
        "../../scripts/folder_predict.py"


# OUT/detect.json is written too but not declared: Snakemake deletes a job's outputs before
# it runs, and write_results reads the previous detect.json to remove the results of meshes
# no longer in the folder.
rule folder_results:
    input:
        labelled=LABELLED,
        meshes=TARGETS,
        predictions=expand(
            f"{FOLDER_CACHE}/folder/chunk-{{chunk}}.json", chunk=range(len(CHUNKS))
        ),
    output:
        results=expand(
            f"{FOLDER_OUT}/{{stem}}.{{ext}}",
            stem=[Path(t).stem for t in TARGETS],
            ext=["csv", "pp", "json"],
        ),
        page=FOLDER_PAGE,
    log:
        f"logs/{RUN}/folder/results.log",
    conda:
        "../../envs/features.yaml"
    params:
        settings=PLAN.settings,
        labelled=LABELLED,
        shapes=lambda wildcards, input: os.path.dirname(input.meshes[0]),
        out=lambda wildcards, output: os.path.dirname(output.page),
    script:
        "../../scripts/folder_results.py"
