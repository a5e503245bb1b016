"""Official DINOv2 ViTs (``dinov2_vit{s,b,l,g}14`` and ``*_reg``) on :mod:`bt3d.backbones.vit`.

Weights come from ``checkpoint`` when given: a ``.pth`` file holding the official state dict,
or a dict wrapping it under ``"model"``, ``"state_dict"`` or ``"teacher"`` (training
checkpoints; ``module.``/``backbone.`` prefixes, chunked ``blocks.C.N.`` names and DINO/iBOT
head keys are handled). Without a checkpoint they are downloaded once from
``https://dl.fbaipublicfiles.com/dinov2/`` into the torch hub cache (``torch.hub.get_dir()``);
``$BT3D_DINOV2_BASE_URL`` replaces that base (a mirror). When the server cannot be reached an
:class:`~bt3d.errors.OfflineError` says which file to fetch and where to point the config.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import torch

from bt3d.backbones.vit import (
    VIT_CONFIGS,
    ViTBackbone,
    ViTConfig,
    register_variant,
    vit_from_state_dict,
)
from bt3d.errors import BackboneError, OfflineError

BASE_URL = "https://dl.fbaipublicfiles.com/dinov2"
DOWNLOAD_TIMEOUT_S = 15.0
_NAME = re.compile(r"dinov2_(vit[sblg]14)(_reg)?$")
_WRAPPERS = ("teacher", "model", "state_dict")


def _parse_name(name: str) -> tuple[str, bool]:
    match = _NAME.match(name)
    if not match:
        raise BackboneError(f"{name!r} is not a DINOv2 backbone name (dinov2_vit[sblg]14[_reg])")
    return match.group(1), bool(match.group(2))


def config_for(name: str) -> ViTConfig:
    """The hub model's architecture for ``dinov2_vits14``, ``dinov2_vitg14_reg``, ..."""
    arch, reg = _parse_name(name)
    return register_variant(VIT_CONFIGS[arch]) if reg else VIT_CONFIGS[arch]


def checkpoint_url(name: str, base_url: str | None = None) -> str:
    """Official download address, e.g. ``.../dinov2_vits14/dinov2_vits14_reg4_pretrain.pth``."""
    arch, reg = _parse_name(name)
    base = (base_url or os.environ.get("BT3D_DINOV2_BASE_URL") or BASE_URL).rstrip("/")
    return f"{base}/dinov2_{arch}/dinov2_{arch}{'_reg4' if reg else ''}_pretrain.pth"


def normalise_state_dict(state: dict, source: str) -> dict[str, torch.Tensor]:
    """Unwrap training checkpoints and rename keys to the hub model's names.

    Args:
        state: what ``torch.load`` returned.
        source: file name for error messages.
    """
    for key in _WRAPPERS:
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise BackboneError(f"checkpoint {source}: not a state dict of tensors")
    out = {}
    for key, value in state.items():
        key = re.sub(r"^(module\.)?(backbone\.)?", "", key)
        if key.startswith(("dino_head.", "ibot_head.", "head.")):
            continue
        out[re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", key)] = value
    return out


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load and normalise a local checkpoint file (BackboneError when missing or unreadable)."""
    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"backbone.checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and tensor errors all mean "not a checkpoint"
        raise BackboneError(f"checkpoint {path} cannot be read by torch.load: {exc}") from exc
    return normalise_state_dict(state, str(path))


def download_state_dict(url: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> dict[str, torch.Tensor]:
    """Fetch a checkpoint into the torch hub cache (or reuse it there) and load it.

    Raises:
        OfflineError: the server cannot be reached within ``timeout`` seconds.
        BackboneError: the server answered with an HTTP error.
    """
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if not cached.is_file():
        try:
            urllib.request.urlopen(
                urllib.request.Request(url, method="HEAD"), timeout=timeout
            ).close()
            torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=False, weights_only=True
            )
        except urllib.error.HTTPError as exc:
            raise BackboneError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise OfflineError(
                f"cannot download {url} ({getattr(exc, 'reason', exc)}): the network is "
                f"unreachable. Download that .pth file on a connected machine and set "
                f"backbone.checkpoint in the config to its path (or copy it to {cached})"
            ) from exc
    return read_checkpoint(cached)


def timm_model_name(name: str) -> str:
    """timm's name of the same weights, e.g. ``vit_small_patch14_reg4_dinov2.lvd142m``."""
    arch, reg = _parse_name(name)
    size = {"vits14": "small", "vitb14": "base", "vitl14": "large", "vitg14": "giant"}[arch]
    return f"vit_{size}_patch14{'_reg4' if reg else ''}_dinov2.lvd142m"


def timm_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm DINOv2 state dict to the official keys.

    timm's ``_convert_dinov2`` dropped ``mask_token``, renamed the SwiGLU ``mlp.w12``/``mlp.w3``
    to ``mlp.fc1``/``mlp.fc2`` (same tensors, same chunk order) and, for register models
    (timm's ``no_embed_class``), renamed ``register_tokens`` -> ``reg_token``, added the class
    position embedding into ``cls_token`` and kept only the grid part of ``pos_embed``. The
    inverse keeps that sum in ``cls_token`` and gives the class a zero position embedding,
    which computes the same tokens. Its classifier ``head`` is empty for these models.
    """
    swiglu = any(k.endswith("mlp.fc1.weight") for k in state) and any(
        k.endswith("mlp.fc2.weight") and v.shape[1] * 2 == state[k.replace("fc2", "fc1")].shape[0]
        for k, v in state.items()
    )
    out = {}
    for key, value in state.items():
        if key.startswith("head."):
            continue
        key = "register_tokens" if key == "reg_token" else key
        if swiglu:
            key = key.replace(".mlp.fc1.", ".mlp.w12.").replace(".mlp.fc2.", ".mlp.w3.")
        out[key] = value
    pos = out["pos_embed"]
    if math.isqrt(pos.shape[1]) ** 2 == pos.shape[1]:  # grid only: no class position
        out["pos_embed"] = torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)
    out.setdefault("mask_token", torch.zeros(1, state["cls_token"].shape[-1]))
    return out


def timm_state_dict(name: str) -> tuple[dict[str, torch.Tensor], str]:
    """Weights through timm (only when timm is importable; it downloads from the HF hub)."""
    if importlib.util.find_spec("timm") is None:
        raise BackboneError(f"source='timm' for {name!r} needs the timm package, not installed")
    import timm

    model_name = timm_model_name(name)
    try:
        model = timm.create_model(model_name, pretrained=True, num_classes=0)
    except OSError as exc:  # requests/huggingface_hub connection errors derive from OSError
        raise OfflineError(
            f"timm could not fetch {model_name} ({exc}); download the official .pth elsewhere "
            f"and set backbone.checkpoint in the config to its path"
        ) from exc
    return timm_to_official(model.state_dict()), f"timm:{model_name}"


def build(
    name: str,
    device: torch.device | str = "cpu",
    checkpoint: str | None = None,
    layer: str | None = None,
    source: str = "url",
    depth: int | None = None,
) -> ViTBackbone:
    """A DINOv2 backbone with official weights.

    Args:
        name: ``dinov2_vit{s,b,l,g}14`` or ``..._reg``.
        checkpoint: local ``.pth``; it wins over ``source``.
        layer: feature layer (see :func:`bt3d.backbones.vit.parse_layer`); default last_norm.
        source: without a checkpoint, ``"url"`` (official file via the torch hub cache) or
            ``"timm"`` (timm's copy of the same weights; timm must be importable).
        depth: keep only the first ``depth`` blocks (small test models); default all.
    """
    config = config_for(name)
    if depth is not None:
        config = replace(config, depth=depth)
    if checkpoint:
        state, origin = read_checkpoint(checkpoint), str(checkpoint)
    elif source == "url":
        origin = checkpoint_url(name)
        state = download_state_dict(origin)
    elif source == "timm":
        state, origin = timm_state_dict(name)
    else:
        raise BackboneError(f"backbone.source {source!r} is unknown; expected 'url' or 'timm'")
    vit = vit_from_state_dict(config, state, origin)
    return ViTBackbone(name, vit, layer or "last_norm").to(device).eval()
