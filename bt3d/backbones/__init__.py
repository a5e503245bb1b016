"""2D backbones: a registry from names to models returning per-patch feature maps.

A backbone is a ``torch.nn.Module`` with ``name``, ``patch_size`` and ``feature_dim`` whose
``forward(images (V, 3, H, W) float in [0, 1]) -> (V, C, H // p, W // p)`` float32 does its own
input normalisation. Adding a backbone (CLIP, SAM, ...) means writing one module with a factory
``build(name, device, checkpoint, layer, **options) -> Backbone`` and adding one
:data:`REGISTRY` entry.
Modules are imported only when their backbone is asked for.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
from typing import Protocol

import torch

from bt3d.backbone_spec import REGISTRY, RegistryEntry, known_backbones, registry_entry
from bt3d.device import resolve_device
from bt3d.errors import BackboneError


class Backbone(Protocol):
    """What the pipeline needs from a backbone (all registered backbones are nn.Modules)."""

    name: str
    patch_size: int
    feature_dim: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def available_backbones() -> list[str]:
    """Registered names whose required packages are installed.

    A listed DINOv2 name may still need its checkpoint (a file or a download).
    """
    return [
        name
        for name in known_backbones()
        if all(importlib.util.find_spec(pkg) is not None for pkg in REGISTRY[name].requires)
    ]


def get_backbone(
    name: str,
    device: str | torch.device = "cpu",
    checkpoint: str | None = None,
    layer: str | None = None,
    **options,
) -> torch.nn.Module:
    """Build a backbone in eval mode on ``device``.

    Args:
        name: a registered name (:func:`known_backbones`).
        device: ``"auto"``, ``"cpu"``, ``"cuda[:N]"`` or a torch.device.
        checkpoint: local weights file, for backbones that take one (DINOv2).
        layer: feature layer for ViTs (``"last_norm"`` default, ``"block9"``, ``"blocks9-11"``).
        options: passed to the backbone's factory (e.g. DINOv2's ``source="timm"``).

    Raises:
        BackboneError: unknown name (listing the known ones), missing package, bad checkpoint.
        OfflineError: weights must be downloaded and the network is unreachable.
    """
    entry = registry_entry(name)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    module = importlib.import_module(entry.module)
    accepted = inspect.signature(module.build).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise BackboneError(f"backbone {name!r} has no option(s) {unknown}")
    model = module.build(name, dev, checkpoint, layer, **options)
    return model.to(dev).eval()


PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def extract_feature_maps(
    backbone: torch.nn.Module,
    images: torch.Tensor,
    batch_size: int = 8,
    precision: str = "float32",
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run a backbone over many views in batches, without autograd.

    Args:
        backbone: from :func:`get_backbone`.
        images: (V, 3, H, W) float in [0, 1], any device (moved to the backbone's device).
        batch_size: views per forward pass.
        precision: ``"float32"``, or ``"bfloat16"`` / ``"float16"``: the forward pass runs
            under :func:`torch.autocast` on the backbone's device (matrix products in that
            type, norms and softmax in float32).
        keep: optional (V, H // p, W // p) bool patches that enter attention
            (:mod:`bt3d.tokens`); only for backbones with ``supports_token_mask``.

    Returns:
        (V, C, H // p, W // p) float32 on the backbone's device.
    """
    if batch_size < 1:
        raise BackboneError(f"batch_size must be >= 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise BackboneError(
            f"backbone.precision {precision!r} is unknown; expected one of {list(PRECISIONS)}"
        )
    if keep is not None and not getattr(backbone, "supports_token_mask", False):
        raise BackboneError(
            f"backbone {getattr(backbone, 'name', type(backbone).__name__)!r} cannot run a "
            "subset of patches; use backbone.tokens: all"
        )
    params = list(backbone.parameters()) + list(backbone.buffers())
    device = params[0].device if params else images.device
    dtype = PRECISIONS[precision]
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        chunks = []
        for i in range(0, len(images), batch_size):
            batch = images[i : i + batch_size].to(device)
            if keep is None:
                chunks.append(backbone(batch).float())
            else:
                chunks.append(backbone(batch, keep[i : i + batch_size].to(device)).float())
    return torch.cat(chunks, dim=0)


__all__ = [
    "PRECISIONS",
    "REGISTRY",
    "Backbone",
    "RegistryEntry",
    "available_backbones",
    "extract_feature_maps",
    "get_backbone",
    "known_backbones",
]
