"""Patch subsets (bt3d.tokens, ViT packing) and backbone precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bt3d.backbones import extract_feature_maps
from bt3d.backbones.vit import (
    DinoVisionTransformer,
    ViTBackbone,
    ViTConfig,
    pack_tokens,
    unpack_tokens,
)
from bt3d.errors import BackboneError, ConfigError
from bt3d.tokens import object_patches, sampled_patches, token_mask

TINY = ViTConfig(embed_dim=32, depth=3, num_heads=4, img_size=70)  # 5 x 5 stored grid


def _backbone(seed: int = 0, registers: int = 0) -> ViTBackbone:
    torch.manual_seed(seed)
    config = ViTConfig(**{**TINY.__dict__, "num_register_tokens": registers})
    vit = DinoVisionTransformer(config)
    for p in vit.parameters():  # non-trivial layer scales, so blocks matter
        if p.ndim == 1:
            p.data.uniform_(0.5, 1.5)
    return ViTBackbone("tiny", vit.eval(), "blocks1-2").eval()


def test_object_patches_any_pixel_of_the_patch() -> None:
    ids = -np.ones((2, 30, 31), dtype=np.int64)  # 2 x 2 patches of 14 px; 2 px cropped
    ids[0, 13, 13] = 5  # patch (0, 0), its last pixel
    ids[1, 29, 30] = 7  # beyond the last whole patch: ignored
    got = object_patches(ids, 14)
    assert got.shape == (2, 2, 2)
    assert got[0].tolist() == [[True, False], [False, False]]
    assert not got[1].any()


def test_sampled_patches_nearest_and_bilinear() -> None:
    pixels = np.array([[[13.9, 0.0], [27.0, 27.9], [20.0, 20.0]]])  # (1, 3, 2) x, y
    visible = np.array([[True, True, False]])
    nearest = sampled_patches(pixels, visible, 28, (4, 4), "nearest")  # 7 px cells
    assert np.argwhere(nearest).tolist() == [[0, 0, 1], [0, 3, 3]]
    bilinear = sampled_patches(pixels, visible, 28, (4, 4), "bilinear")
    assert bilinear.sum() == 6 + 4 and (bilinear >= nearest).all()


def test_token_mask_all_is_none_and_unknown_is_named() -> None:
    ids = np.zeros((1, 28, 28), dtype=np.int64)
    args = (ids, np.zeros((1, 1, 2)), np.zeros((1, 1), bool), 28, 14, "nearest")
    assert token_mask("all", *args) is None
    assert token_mask("object", *args).all()
    with pytest.raises(ConfigError, match="backbone.tokens 'some'"):
        token_mask("some", *args)


def test_pack_then_unpack_restores_kept_tokens() -> None:
    tokens = torch.randn(3, 2 + 6, 4)
    keep = torch.tensor([[1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]]).bool()
    packed, valid, index = pack_tokens(tokens, keep, 2)
    assert packed.shape == (3, 8, 4) and valid.sum(1).tolist() == [4, 2, 8]
    back = unpack_tokens(packed, valid, index, tokens.shape)
    selected = torch.cat([torch.ones(3, 2, dtype=torch.bool), keep], 1)
    assert torch.equal(back[selected], tokens[selected])
    assert not back[~selected].any()


@pytest.mark.parametrize("registers", [0, 2])
def test_padded_batch_equals_each_view_alone(registers: int) -> None:
    """Padding never leaks into the kept tokens: a batch of views with different subsets
    gives each view's maps as if it ran alone with exactly its patches."""
    backbone = _backbone(registers=registers)
    images = torch.rand(3, 3, 56, 56)
    keep = torch.rand(3, 4, 4) > 0.5
    keep[:, 0, 0] = True
    with torch.inference_mode():
        batch = backbone(images, keep)
        alone = torch.cat([backbone(images[i : i + 1], keep[i : i + 1]) for i in range(3)])
        full = backbone(images)
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-4)
    assert not batch.permute(0, 2, 3, 1)[~keep].any()  # dropped patches are zero
    assert not torch.allclose(batch.permute(0, 2, 3, 1)[keep], full.permute(0, 2, 3, 1)[keep])
    with torch.inference_mode():
        assert torch.equal(backbone(images, torch.ones(3, 4, 4, dtype=torch.bool)), full)


def test_bfloat16_autocast_is_close_and_unknown_precision_is_named() -> None:
    backbone = _backbone()
    images = torch.rand(4, 3, 56, 56)
    f32 = extract_feature_maps(backbone, images, batch_size=3)
    bf16 = extract_feature_maps(backbone, images, batch_size=3, precision="bfloat16")
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, f32)
    cos = torch.nn.functional.cosine_similarity(bf16, f32, dim=1)
    assert cos.min() > 0.99
    with pytest.raises(BackboneError, match="precision 'int4'"):
        extract_feature_maps(backbone, images, precision="int4")


def test_token_subset_needs_a_backbone_that_supports_it() -> None:
    from bt3d.backbones.classical import build

    classical = build("classical", "cpu", None, None)
    with pytest.raises(BackboneError, match="tokens: all"):
        extract_feature_maps(
            classical, torch.rand(1, 3, 28, 28), keep=torch.ones(1, 2, 2, dtype=torch.bool)
        )
