"""LlamaGen-layout VQ: checkpoint key layout, strict loading, 288x512 -> 18x32 tokens."""

from __future__ import annotations

import pytest
import torch

from world_model.tokenizer import LlamaGenVQ, LlamaGenVQConfig, load_image_tokenizer, load_llamagen_vq
from world_model.tokenizer.llamagen import infer_llamagen_config

# A narrow model with the same structure as VQ-16 (5 levels, 16x), so the test stays fast.
NARROW = LlamaGenVQConfig(ch=32, num_res_blocks=1, z_channels=32, codebook_size=512)


def test_vq16_layout_matches_the_published_checkpoint():
    with torch.device("meta"):
        state = LlamaGenVQ().state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    # LlamaGen reports 72M parameters for VQ-16.
    assert sum(v.numel() for v in state.values()) == 71_883_403
    assert len(state) == 343
    expected = {  # encoder down to 16x at 512 channels, the 8-d codebook, and the decoder back up
        "encoder.conv_in.weight": (128, 3, 3, 3), "encoder.conv_blocks.0.res.1.conv2.weight": (128, 128, 3, 3),
        "encoder.conv_blocks.2.res.0.nin_shortcut.weight": (256, 128, 1, 1), "encoder.conv_blocks.3.downsample.conv.weight": (256, 256, 3, 3),
        "encoder.conv_blocks.4.attn.1.proj_out.weight": (512, 512, 1, 1), "encoder.mid.1.q.weight": (512, 512, 1, 1),
        "encoder.mid.2.norm2.weight": (512,), "encoder.conv_out.weight": (256, 512, 3, 3),
        "quant_conv.weight": (8, 256, 1, 1), "quantize.embedding.weight": (16384, 8), "post_quant_conv.weight": (256, 8, 1, 1),
        "decoder.conv_in.weight": (512, 256, 3, 3), "decoder.conv_blocks.0.attn.2.k.weight": (512, 512, 1, 1),
        "decoder.conv_blocks.0.upsample.conv.weight": (512, 512, 3, 3), "decoder.conv_blocks.1.res.0.nin_shortcut.weight": (256, 512, 1, 1),
        "decoder.conv_blocks.4.res.2.conv1.weight": (128, 128, 3, 3), "decoder.norm_out.weight": (128,), "decoder.conv_out.weight": (3, 128, 3, 3),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    # attention only at the lowest resolution; no resampler beyond the ends
    assert not any(k.startswith(("encoder.conv_blocks.3.attn", "decoder.conv_blocks.1.attn")) for k in shapes)
    assert not any(k.startswith(("encoder.conv_blocks.4.downsample", "decoder.conv_blocks.4.upsample")) for k in shapes)
    assert infer_llamagen_config(state) == LlamaGenVQConfig()
    with torch.device("meta"):
        vq8 = LlamaGenVQConfig(ch_mult=(1, 2, 2, 4))
        assert infer_llamagen_config(LlamaGenVQ(vq8).state_dict()) == vq8


def _save_checkpoint(path, config, seed=0, extra=None, drop=()):
    torch.manual_seed(seed)
    state = LlamaGenVQ(config).state_dict()
    state = {k: v for k, v in state.items() if k not in drop}
    state["quantize.codebook_used"] = torch.zeros(65536)  # present in the released files; ignored
    state.update(extra or {})
    torch.save({"model": state}, path)
    return state


def test_checkpoint_round_trip_and_288x512_tokens(tmp_path):
    path = tmp_path / "vq_ds16_c2i.pt"
    state = _save_checkpoint(path, NARROW)
    model = load_llamagen_vq(path)  # architecture inferred from the shapes
    assert model.config == NARROW and not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    x = torch.rand(1, 3, 288, 512, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        enc = model.encode(x)
        assert enc.indices.shape == (1, 18, 32) and enc.indices.dtype == torch.int64
        assert 0 <= int(enc.indices.min()) and int(enc.indices.max()) < 512
        # codes are unit vectors; the chosen code is the most similar one to the l2-normalised query
        assert torch.allclose(enc.quantized.norm(dim=1), torch.ones(1, 18, 32), atol=1e-5)
        out = model.decode_indices(enc.indices[:, :2, :3])
    assert out.shape == (1, 3, 32, 48)
    loaded = load_image_tokenizer(path)
    assert loaded.identity["architecture"] == "llamagen-vq" and len(loaded.identity["weights_sha256"]) == 64


def test_strict_keys_error_lists_missing_and_unexpected(tmp_path):
    path = tmp_path / "bad.pt"
    _save_checkpoint(
        path, NARROW, drop=("decoder.conv_out.bias", "quant_conv.weight"),
        extra={"encoder.extra.weight": torch.zeros(1), "quantize.embedding.weight": torch.zeros(7, 8)},
    )
    with pytest.raises(ValueError) as err:
        load_llamagen_vq(path, NARROW)
    msg = str(err.value)
    assert str(path) in msg
    assert "missing keys (2): decoder.conv_out.bias, quant_conv.weight" in msg
    assert "unexpected keys (1): encoder.extra.weight" in msg
    assert "quantize.embedding.weight: checkpoint (7, 8) vs model (512, 8)" in msg


class Opaque:
    """Stands in for the argparse.Namespace that LlamaGen training checkpoints pickle."""


def test_unreadable_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_llamagen_vq(tmp_path / "none.pt")
    torch.save({"weights": {}}, tmp_path / "nomodel.pt")
    with pytest.raises(ValueError, match='"model" state dict'):
        load_llamagen_vq(tmp_path / "nomodel.pt")
    torch.save({"model": {}, "args": Opaque()}, tmp_path / "pickled.pt")  # pickled objects are refused, not run
    with pytest.raises(ValueError, match="weights_only=True"):
        load_llamagen_vq(tmp_path / "pickled.pt")
