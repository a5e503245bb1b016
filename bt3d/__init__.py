"""bt3d: few-shot 3D keypoint detection with back-projected 2D foundation-model features.

A reimplementation of "Back to 3D" (Wimmer, Wonka, Ovsjanikov, CVPR 2024). The maths lives
in small modules with pure functions; the Snakemake workflow in ``workflow/`` only moves files.
"""

__version__ = "0.1.0"
