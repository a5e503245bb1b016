"""A plain PyTorch DINOv2 vision transformer whose state dict matches the official checkpoints.

The module tree mirrors ``facebookresearch/dinov2`` (``DinoVisionTransformer`` as built by its
torch.hub entry points with ``block_chunks=0``), so the keys are exactly::

    cls_token (1, 1, D), pos_embed (1, 1 + M*M, D), mask_token (1, D),
    register_tokens (1, R, D)                       # *_reg models only
    patch_embed.proj.{weight (D, 3, 14, 14), bias}
    blocks.N.norm1.{weight, bias}
    blocks.N.attn.qkv.{weight (3D, D), bias}, blocks.N.attn.proj.{weight, bias}
    blocks.N.ls1.gamma (D,), blocks.N.norm2.{weight, bias}
    blocks.N.mlp.fc1 / fc2.{weight, bias}           # "mlp" FFN (S, B, L)
    blocks.N.mlp.w12 / w3.{weight, bias}            # "swiglufused" FFN (g)
    blocks.N.ls2.gamma (D,)
    norm.{weight, bias}

and ``model.load_state_dict(torch.load("dinov2_vits14_pretrain.pth"))`` works.

Feature layers (``layer`` argument, see :func:`parse_layer`):

- ``"last_norm"``: patch tokens of the last block after the final LayerNorm (the paper's setup).
- ``"blockN"``: patch tokens output by block index N (0-based), passed through the *same final
  LayerNorm* (as DINOv2's ``get_intermediate_layers(..., norm=True)``, the variant used by its
  dense heads). Normalising keeps scales comparable between layers; the raw residual stream of a
  middle block has a few very large channels that would dominate a feature distance.
- ``"blocksA-B"``: the normalised patch tokens of blocks A..B (inclusive) concatenated along
  channels, so C = (B - A + 1) * D.

``"last_norm"`` equals ``"block{depth-1}"``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from bt3d.backbone_spec import parse_layer
from bt3d.errors import BackboneError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of a DINOv2 ViT (defaults: the torch.hub models, img_size 518)."""

    embed_dim: int
    depth: int
    num_heads: int
    ffn: str = "mlp"  # "mlp" (GELU MLP) or "swiglufused"
    mlp_ratio: float = 4.0
    patch_size: int = 14
    img_size: int = 518
    num_register_tokens: int = 0
    interpolate_offset: float = 0.1
    interpolate_antialias: bool = False
    layer_norm_eps: float = 1e-6

    @property
    def hidden_dim(self) -> int:
        """Width of the FFN hidden layer (SwiGLU: 2/3 of it, rounded up to a multiple of 8)."""
        hidden = int(self.embed_dim * self.mlp_ratio)
        if self.ffn == "swiglufused":
            return (int(hidden * 2 / 3) + 7) // 8 * 8
        return hidden

    @property
    def grid_size(self) -> int:
        """Side M of the stored M x M grid of position embeddings."""
        return self.img_size // self.patch_size


VIT_CONFIGS: dict[str, ViTConfig] = {
    "vits14": ViTConfig(embed_dim=384, depth=12, num_heads=6),
    "vitb14": ViTConfig(embed_dim=768, depth=12, num_heads=12),
    "vitl14": ViTConfig(embed_dim=1024, depth=24, num_heads=16),
    "vitg14": ViTConfig(embed_dim=1536, depth=40, num_heads=24, ffn="swiglufused"),
}


def register_variant(config: ViTConfig) -> ViTConfig:
    """The ``*_reg`` variant of a config: 4 register tokens, antialiased size-based resize."""
    return replace(
        config, num_register_tokens=4, interpolate_offset=0.0, interpolate_antialias=True
    )


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> D channels (``patch_embed.proj``)."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, h*w, D), row-major over the h x w patch grid."""
        return self.proj(x).flatten(2).transpose(1, 2)


@functools.lru_cache(maxsize=1)
def _xformers_attention():
    """xformers' memory-efficient attention when importable, else None (checked once)."""
    try:
        from xformers.ops import memory_efficient_attention
    except ImportError:
        return None
    return memory_efficient_attention


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (``attn.qkv``, ``attn.proj``)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, D) -> (B, N, D); ``key_mask`` (B, N) bool: tokens that may be attended to
        (None = all). Queries at masked-out positions give values nobody should read."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)
        if (
            key_mask is None
            and x.is_cuda
            and (xformers_attention := _xformers_attention()) is not None
        ):
            q, k, v = qkv.unbind(2)  # (B, N, H, d) each, xformers layout
            out = xformers_attention(q, k, v).reshape(b, n, d)
        else:
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, d) each
            mask = None if key_mask is None else key_mask[:, None, None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            out = out.transpose(1, 2).reshape(b, n, d)
        return self.proj(out)


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLUFFNFused(nn.Module):
    """w12 -> split (x1, x2) -> silu(x1) * x2 -> w3 (DINOv2's "swiglufused", ViT-g)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    """Per-channel scale ``gamma`` (``ls1.gamma``, ``ls2.gamma``)."""

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x))."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.attn = Attention(d, config.num_heads)
        self.ls1 = LayerScale(d)
        self.norm2 = nn.LayerNorm(d, eps=config.layer_norm_eps)
        ffn = SwiGLUFFNFused if config.ffn == "swiglufused" else Mlp
        self.mlp = ffn(d, config.hidden_dim)
        self.ls2 = LayerScale(d)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), key_mask))
        return x + self.ls2(self.mlp(self.norm2(x)))


def interpolate_pos_embed(
    pos_embed: torch.Tensor,
    grid_hw: tuple[int, int],
    offset: float = 0.1,
    antialias: bool = False,
) -> torch.Tensor:
    """Resize learned position embeddings to a new patch grid, as DINOv2 does.

    Args:
        pos_embed: (1, 1 + M*M, D) stored embeddings (class token first).
        grid_hw: (h, w) target patch grid.
        offset: DINOv2's ``interpolate_offset``: with offset > 0 the bicubic resize is driven by
            the scale factor ((h + offset) / M, (w + offset) / M); with 0 by the target size
            (Hugging Face's Dinov2 and the *_reg hub models).
        antialias: passed to ``F.interpolate``.

    Returns:
        (1, 1 + h*w, D) embeddings; the input itself when the grid already matches.
    """
    n = pos_embed.shape[1] - 1
    m = math.isqrt(n)
    if m * m != n:
        raise BackboneError(f"pos_embed holds {n} patch positions, not a square grid")
    h, w = grid_hw
    if (h, w) == (m, m):
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = pos_embed[:, 1:].float().reshape(1, m, m, dim).permute(0, 3, 1, 2)
    if offset:
        kwargs = {"scale_factor": ((h + offset) / m, (w + offset) / m)}
    else:
        kwargs = {"size": (h, w)}
    grid = F.interpolate(grid, mode="bicubic", antialias=antialias, **kwargs)
    if grid.shape[-2:] != (h, w):
        raise BackboneError(
            f"position embeddings resized to {tuple(grid.shape[-2:])}, not {grid_hw}"
        )
    grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, dim).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], grid], dim=1)


def pack_tokens(
    tokens: torch.Tensor, keep: torch.Tensor, num_prefix: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gather each image's prefix tokens and kept patch tokens to the front, padded to the
    batch's longest subset.

    Args:
        tokens: (B, P + M, D) prefix (class, registers) then patch tokens.
        keep: (B, M) bool patches to keep.
        num_prefix: P.

    Returns:
        ``(packed (B, L, D), valid (B, L) bool, index (B, L) long)``: L = P + the largest
        number of kept patches; ``index`` is each packed slot's position in ``tokens``
        (padding slots repeat position 0 and are marked invalid).
    """
    b, total, _ = tokens.shape
    prefix = torch.ones(b, num_prefix, dtype=torch.bool, device=tokens.device)
    selected = torch.cat([prefix, keep.to(torch.bool)], dim=1)  # (B, P + M)
    counts = selected.sum(dim=1)
    length = int(counts.max())
    # stable sort puts the selected positions first, in their original order
    order = torch.argsort((~selected).to(torch.int8), dim=1, stable=True)[:, :length]
    valid = torch.arange(length, device=tokens.device)[None, :] < counts[:, None]
    index = torch.where(valid, order, torch.zeros_like(order))
    packed = torch.gather(tokens, 1, index[..., None].expand(-1, -1, tokens.shape[-1]))
    return packed, valid, index


def unpack_tokens(
    packed: torch.Tensor, valid: torch.Tensor, index: torch.Tensor, full_shape: torch.Size
) -> torch.Tensor:
    """Inverse of :func:`pack_tokens`: (B, L, D) -> (B, P + M, D), zeros where not kept."""
    out = packed.new_zeros(full_shape)
    values = packed * valid[..., None].to(packed.dtype)
    # padding slots point at position 0 with value 0 and must not overwrite the class token
    safe = torch.where(valid, index, torch.full_like(index, full_shape[1]))
    out = torch.cat([out, out.new_zeros(full_shape[0], 1, full_shape[2])], dim=1)
    out.scatter_(1, safe[..., None].expand(-1, -1, full_shape[2]), values)
    return out[:, : full_shape[1]]


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT with the official parameter names; see the module docstring."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embed_dim
        self.patch_size = config.patch_size
        self.embed_dim = d
        self.patch_embed = PatchEmbed(config.patch_size, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.grid_size**2, d))
        if config.num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, config.num_register_tokens, d))
        else:
            self.register_tokens = None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.mask_token = nn.Parameter(torch.zeros(1, d))
        if self.pos_embed.device.type != "meta":
            # on the meta device (checkpoint loading) there is nothing to initialise, and
            # torch's meta normal_ would import torch._dynamo (about 1.4 s of every start)
            self._init_random()

    def _init_random(self) -> None:
        """Truncated-normal weights like DINOv2's init (so a random model is well scaled)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    @property
    def num_prefix_tokens(self) -> int:
        """Class token plus register tokens, which precede the patch tokens."""
        return 1 + self.config.num_register_tokens

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 1 + R + h*w, D) tokens before block 0."""
        b, _, height, width = x.shape
        grid = (height // self.patch_size, width // self.patch_size)
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        tokens = tokens + interpolate_pos_embed(
            self.pos_embed,
            grid,
            offset=self.config.interpolate_offset,
            antialias=self.config.interpolate_antialias,
        )
        if self.register_tokens is not None:
            registers = self.register_tokens.expand(b, -1, -1)
            tokens = torch.cat([tokens[:, :1], registers, tokens[:, 1:]], dim=1)
        return tokens

    def block_outputs(
        self, x: torch.Tensor, indices: tuple[int, ...], keep: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Raw (un-normalised) outputs of the given blocks: list of (B, T, D).

        Blocks after the largest requested index are not run. With ``keep`` (B, h*w) bool,
        only the prefix tokens and the kept patches enter the blocks (see
        :func:`pack_tokens`); the outputs are then (B, 1 + R + h*w, D) with zeros at the
        patches left out.
        """
        tokens = self.prepare_tokens(x)
        key_mask = None
        if keep is not None:
            full_shape = tokens.shape
            tokens, key_mask, index = pack_tokens(tokens, keep, self.num_prefix_tokens)
        wanted = set(indices)
        outputs = {}
        for i, block in enumerate(self.blocks[: max(indices) + 1]):
            tokens = block(tokens, key_mask)
            if i in wanted:
                outputs[i] = tokens
        if keep is not None:
            return [unpack_tokens(outputs[i], key_mask, index, full_shape) for i in indices]
        return [outputs[i] for i in indices]

    def feature_maps(
        self, x: torch.Tensor, layer: str = "last_norm", keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Normalised patch tokens of ``layer`` as maps.

        Args:
            x: (B, 3, H, W) ImageNet-normalised images.
            layer: see :func:`parse_layer`.
            keep: optional (B, H // p, W // p) bool: the patches that enter attention (the
                others neither attend nor are attended to, and their maps are zero).

        Returns:
            (B, C, H // p, W // p) with C = D times the number of blocks in ``layer``.
        """
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        flat_keep = None if keep is None else keep.reshape(len(x), h * w).to(x.device)
        if flat_keep is not None and bool(flat_keep.all()):
            flat_keep = None  # every patch kept: the plain path, bitwise
        outputs = self.block_outputs(x, parse_layer(layer, len(self.blocks)), flat_keep)
        maps = []
        for out in outputs:
            patches = self.norm(out[:, self.num_prefix_tokens :])
            if flat_keep is not None:
                patches = patches * flat_keep[..., None].to(patches.dtype)
            maps.append(patches.transpose(1, 2).reshape(-1, self.embed_dim, h, w))
        return torch.cat(maps, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, D) class token after the final norm (the hub model's output)."""
        return self.norm(self.block_outputs(x, (len(self.blocks) - 1,))[0])[:, 0]


def vit_from_state_dict(
    config: ViTConfig, state: dict[str, torch.Tensor], source: str
) -> DinoVisionTransformer:
    """A ViT holding the tensors of ``state`` (built on the meta device: no random init).

    Every key and shape is checked first. A ``pos_embed`` for another square grid (e.g. a
    224 px checkpoint) is accepted; it is resized to each input's grid at run time.

    Raises:
        BackboneError: naming ``source`` and the missing, unexpected or mis-shaped keys.
    """
    with torch.device("meta"):
        vit = DinoVisionTransformer(config)
    expected = vit.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise BackboneError(
            f"checkpoint {source} does not fit {config}: missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}"
        )
    for key, tensor in expected.items():
        found = tuple(state[key].shape)
        pos_ok = key == "pos_embed" and len(found) == 3 and found[::2] == (1, config.embed_dim)
        if found != tuple(tensor.shape) and not pos_ok:
            raise BackboneError(
                f"checkpoint {source}: {key} has shape {found}, the model expects "
                f"{tuple(tensor.shape)}"
            )
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    vit.load_state_dict(state, assign=True)
    return vit.eval()


class ViTBackbone(nn.Module):
    """A bt3d backbone around a :class:`DinoVisionTransformer`.

    ``forward(images (V, 3, H, W) in [0, 1]) -> (V, C, H // 14, W // 14)`` float32; ImageNet
    mean/std normalisation happens inside. Image sides that are not multiples of 14 lose their
    last ``side % 14`` pixels (the patch convolution has stride 14).
    """

    def __init__(self, name: str, vit: DinoVisionTransformer, layer: str = "last_norm") -> None:
        super().__init__()
        self.name = name
        self.vit = vit
        self.layer = layer
        self.patch_size = vit.patch_size
        self.feature_dim = vit.embed_dim * len(parse_layer(layer, len(vit.blocks)))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    supports_token_mask = True

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``keep``: optional (V, H // 14, W // 14) bool patches that enter attention (see
        :meth:`DinoVisionTransformer.feature_maps`); the maps are zero elsewhere."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise BackboneError(
                f"{self.name}: expected images (V, 3, H, W), got {tuple(images.shape)}"
            )
        x = (images.float() - self.mean) / self.std
        return self.vit.feature_maps(x, self.layer, keep).float()
