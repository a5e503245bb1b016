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


def build(
    name: str,
    device: torch.device | str = "cpu",
    checkpoint: str | None = None,
    layer: str | None = None,
    depth: int | None = None,
) -> ViTBackbone:
    """A DINOv2 backbone with official weights.

    Args:
        name: ``dinov2_vit{s,b,l,g}14`` or ``..._reg``.
        checkpoint: local ``.pth``; default: the official URL via the torch hub cache.
        layer: feature layer (see :func:`bt3d.backbones.vit.parse_layer`); default last_norm.
        depth: keep only the first ``depth`` blocks (small test models); default all.
    """
    config = config_for(name)
    if depth is not None:
        config = replace(config, depth=depth)
    if checkpoint:
        state, source = read_checkpoint(checkpoint), str(checkpoint)
    else:
        url = checkpoint_url(name)
        state, source = download_state_dict(url), url
    vit = vit_from_state_dict(config, state, source)
    return ViTBackbone(name, vit, layer or "last_norm").to(device).eval()
