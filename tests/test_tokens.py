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
from bt3d.tokens import (
    background_grid,
    dilate_patches,
    object_patches,
    sampled_patches,
    token_mask,
)

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


def _dilate_by_distance(mask: np.ndarray, margin: int) -> np.ndarray:
    """Reference: a patch is kept when some True patch is within Chebyshev distance margin."""
    out = np.zeros_like(mask)
    for v, i, j in np.ndindex(*mask.shape):
        ii, jj = np.nonzero(mask[v])
        out[v, i, j] = bool(len(ii)) and np.max([abs(ii - i), abs(jj - j)], axis=0).min() <= margin
    return out


@pytest.mark.parametrize("margin", [0, 1, 2, 7])
def test_dilate_patches_is_the_chebyshev_neighbourhood(margin: int) -> None:
    rng = np.random.default_rng(margin)
    mask = rng.random((3, 6, 5)) > 0.85
    mask[2] = False  # an empty view stays empty
    mask[1, 0, 4] = True  # a corner: the growth is clipped at the border
    got = dilate_patches(mask, margin)
    assert got.shape == mask.shape and got.dtype == bool
    assert np.array_equal(got, _dilate_by_distance(mask, margin))
    assert not got[2].any()


def test_background_grid_every_stride_th_patch_centred() -> None:
    assert np.argwhere(background_grid((5, 7), 3)).tolist() == [
        [1, 1], [1, 4], [4, 1], [4, 4]
    ]  # fmt: skip
    assert background_grid((16, 16), 4).sum() == 16
    assert background_grid((16, 16), 1).all()
    assert not background_grid((4, 4), 0).any()


def test_token_mask_margin_and_background_grid() -> None:
    ids = -np.ones((2, 70, 70), dtype=np.int64)  # 5 x 5 patches of 14 px
    ids[0, 30, 30] = 1  # patch (2, 2) of view 0; view 1 shows nothing
    args = (ids, np.zeros((2, 1, 2)), np.zeros((2, 1), bool), 70, 14, "nearest")
    plain = token_mask("object", *args)
    assert plain.sum() == 1 and plain[0, 2, 2]
    grown = token_mask("object", *args, margin=1)
    assert grown[0, 1:4, 1:4].all() and grown.sum() == 9
    grid = token_mask("object", *args, background_stride=2)
    assert np.array_equal(grid[1], background_grid((5, 5), 2))  # background only
    assert np.array_equal(grid[0], background_grid((5, 5), 2) | plain[0])
    both = token_mask("object", *args, margin=1, background_stride=2)
    assert np.array_equal(both, grown | grid)
    assert token_mask("all", *args, margin=2, background_stride=3) is None
    with pytest.raises(ConfigError, match="backbone.token_margin must be an integer >= 0"):
        token_mask("object", *args, margin=-1)
    with pytest.raises(ConfigError, match="backbone.background_stride must be an integer"):
        token_mask("object", *args, background_stride=1.5)


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


def test_pipeline_applies_margin_and_background_stride() -> None:
    """backproject_views with tokens object: margin and stride change the features; a margin
    or a stride that covers every patch gives the features of tokens all, bit for bit."""
    import trimesh

    from bt3d.pipeline import backproject_views, sample_surface
    from bt3d.settings import FeatureSettings, load_config
    from bt3d.structures import Mesh

    box = trimesh.creation.box(extents=(0.3, 0.2, 0.1))
    mesh = Mesh(np.asarray(box.vertices), np.asarray(box.faces), source="box")
    points = sample_surface(mesh, 200, seed=0)
    backbone = _backbone()

    def features(**backbone_keys) -> np.ndarray:
        config = load_config(
            overrides={
                "render": {"n_azimuth": 3, "n_polar": 1, "image_size": 56},
                "backbone": {"precision": "float32", **backbone_keys},
                "dataset": {"normalise": False},
            }
        )
        settings = FeatureSettings.from_config(config)
        with torch.inference_mode():
            return backproject_views(mesh, points, backbone, settings)[0]

    full = features(tokens="all", token_margin=1, background_stride=2)  # both ignored
    assert np.array_equal(full, features(tokens="all"))
    plain = features(tokens="object", token_margin=0, background_stride=0)
    grown = features(tokens="object", token_margin=1, background_stride=0)
    gridded = features(tokens="object", token_margin=0, background_stride=2)
    assert not np.array_equal(plain, grown) and not np.array_equal(plain, gridded)
    assert np.array_equal(features(tokens="object", token_margin=4), full)
    assert np.array_equal(features(tokens="object", token_margin=0, background_stride=1), full)


def test_margin_and_stride_are_part_of_the_features_config_hash() -> None:
    """The workflow's features params and bt3d features' header hash FeatureSettings.to_dict."""
    from bt3d.cache import config_hash
    from bt3d.settings import FeatureSettings, load_config

    def key(margin: int, stride: int) -> str:
        backbone = {"tokens": "object", "token_margin": margin, "background_stride": stride}
        config = load_config(overrides={"backbone": backbone})
        return config_hash(FeatureSettings.from_config(config).to_dict())

    hashes = {key(0, 0), key(1, 0), key(0, 4)}
    assert len(hashes) == 3
    with pytest.raises(ConfigError, match="token_margin"):
        load_config(overrides={"backbone": {"token_margin": -1}})
