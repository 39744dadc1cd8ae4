"""ConvTokenizer, its quantisers, losses, metrics and safetensors export."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from world_model.tokenizer import (
    ConvTokenizer,
    EMAVectorQuantizer,
    FiniteScalarQuantizer,
    code_usage,
    export_tokenizer,
    load_tokenizer,
    tokenizer_config,
)
from world_model.tokenizer.losses import LossWeights, tokenizer_loss
from world_model.tokenizer.metrics import psnr_db, ssim
from world_model.tokenizer.perceptual import PerceptualLoss, load_perceptual_loss
from world_model.tokenizer.pixels import frames_to_images, images_to_frames


def smooth_images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, h, w) in [-1, 1]: random colour fields with detail at 1/8 of the resolution, so every
    8x8 token cell differs and a collapsed codebook cannot reconstruct them."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, h // 8, w // 8, generator=g) * 2 - 1
    return F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)


@pytest.mark.parametrize(
    "size,hw,grid,arch",
    [("tiny", (64, 128), (8, 16), {}), ("small", (64, 128), (4, 8), {}),
     ("tiny", (64, 128), (8, 16), {"patch_size": 2, "channel_mult": [2, 2, 4]}),
     ("tiny", (64, 128), (4, 8), {"patch_size": 4, "channel_mult": [2, 2, 4]})],
    ids=["8x", "16x", "8x-patch2", "16x-patch4"],
)
@pytest.mark.parametrize("quantizer", ["fsq", "vq"])
def test_encode_decode_shapes(size, hw, grid, arch, quantizer):
    torch.manual_seed(0)
    model = ConvTokenizer(tokenizer_config(size, base_channels=8, quantizer=quantizer, vq_codebook_size=64, **arch)).eval()
    assert model.downsample_factor == hw[0] // grid[0]
    x = smooth_images(2, *hw)
    with torch.no_grad():
        enc = model.encode(x)
        out = model.decode_indices(enc.indices)
    assert enc.indices.shape == (2, *grid) and enc.indices.dtype == torch.int64
    assert enc.quantized.shape == (2, model.config.code_dim, *grid)
    assert 0 <= int(enc.indices.min()) and int(enc.indices.max()) < model.codebook_size
    assert out.shape == x.shape
    # decoding the indices is exactly decoding the quantised codes
    torch.testing.assert_close(out, model.decode(enc.quantized))


def test_bad_inputs_are_named():
    model = ConvTokenizer(tokenizer_config("tiny", base_channels=8))
    with pytest.raises(ValueError, match="not a multiple of the tokenizer's downsampling factor 8"):
        model.encode(torch.zeros(1, 3, 60, 128))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.encode(torch.zeros(1, 64, 128))
    with pytest.raises(ValueError, match="unknown keys"):
        tokenizer_config("tiny", channels=3)
    with pytest.raises(ValueError, match="patch_size must be a positive integer"):
        tokenizer_config("tiny", patch_size=0)
    patched = ConvTokenizer(tokenizer_config("tiny", base_channels=8, patch_size=2, channel_mult=[2, 2, 4]))
    with pytest.raises(ValueError, match="downsampling factor 8"):
        patched.encode(torch.zeros(1, 3, 64, 132))
    with pytest.raises(ValueError, match="uint16"):
        tokenizer_config("tiny", quantizer="vq", vq_codebook_size=70000)


def test_fsq_indices_in_range_and_bijective():
    fsq = FiniteScalarQuantizer((8, 5, 5, 5))
    assert fsq.codebook_size == 1000
    all_idx = torch.arange(1000)
    codes = fsq.indices_to_codes(all_idx)  # (1000, 4)
    assert codes.min() >= -1 and codes.max() <= 1
    assert len(torch.unique(codes, dim=0)) == 1000
    torch.testing.assert_close(fsq.codes_to_indices(codes), all_idx)
    # quantising a code vector returns that code and index (through the tanh bound)
    z = torch.randn(3, 4, 5, 6) * 3
    enc = fsq(z)
    assert enc.indices.min() >= 0 and enc.indices.max() < 1000
    torch.testing.assert_close(fsq.embed_indices(enc.indices), enc.quantized)
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        fsq.indices_to_codes(torch.tensor([1000]))


def test_fsq_penalty_pulls_saturated_latents_back():
    fsq = FiniteScalarQuantizer((8, 5, 5, 5), prequant_penalty_weight=1e-2, prequant_bound=2.0)
    small = fsq(torch.full((1, 4, 2, 2), 1.5)).aux_loss
    assert float(small) == 0.0  # inside the working range: no pull
    z = torch.full((1, 4, 2, 2), 50.0, requires_grad=True)
    enc = fsq(z)
    enc.aux_loss.backward()
    assert float(enc.aux_loss.detach()) > 0 and bool((z.grad > 0).all())  # descent lowers |z|
    assert code_usage(enc.indices, 1000).num_used == 1  # what saturation does to the codebook


def test_vq_ema_codebook_updates_and_commitment():
    torch.manual_seed(0)
    vq = EMAVectorQuantizer(codebook_size=16, code_dim=4, decay=0.5, dead_code_threshold=0.0)
    z = torch.randn(2, 4, 4, 4)
    vq.train()
    first = vq(z)
    assert bool(vq.initialized)
    before = vq.codebook.clone()
    shifted = z + 3.0
    enc = vq(shifted)
    moved = (vq.codebook - before).norm(dim=1)
    used = torch.unique(enc.indices)
    assert bool((moved[used] > 0).all())  # every used code moved ...
    flat = shifted.permute(0, 2, 3, 1).reshape(-1, 4)
    for k in used.tolist():  # ... towards the mean of the vectors assigned to it
        target = flat[enc.indices.reshape(-1) == k].mean(0)
        assert (vq.codebook[k] - target).norm() < (before[k] - target).norm()
    assert float(enc.aux_loss) > 0 and first.indices.shape == (2, 4, 4)
    vq.eval()
    frozen = vq.codebook.clone()
    vq(shifted)
    torch.testing.assert_close(vq.codebook, frozen)  # no updates at inference


def test_vq_restarts_dead_codes():
    torch.manual_seed(0)
    vq = EMAVectorQuantizer(codebook_size=32, code_dim=2, decay=0.9, dead_code_threshold=0.5).train()
    vq(torch.randn(1, 2, 4, 4))
    far = torch.full((1, 2, 4, 4), 100.0)
    vq.codebook[:] = -100.0  # every code far from the data: all but one go unused and decay
    vq.embed_sum[:] = -100.0
    for _ in range(10):
        vq(far)
    assert float(vq.codebook.max()) > 50  # some codes were restarted at data points


@pytest.mark.parametrize("arch", [{}, {"patch_size": 2, "channel_mult": [2, 2, 4]}], ids=["pixels", "patch2"])
def test_tiny_tokenizer_overfits_without_collapse(arch):
    torch.manual_seed(0)
    x = smooth_images(8, 32, 64)
    model = ConvTokenizer(tokenizer_config("tiny", base_channels=16, **arch))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def evaluate():
        model.eval()
        with torch.no_grad():
            enc = model.encode(x)
            psnr = float(psnr_db(model.decode_indices(enc.indices), x).mean())
        model.train()
        return psnr, code_usage(enc.indices, model.codebook_size)

    psnr0, _ = evaluate()
    for _ in range(100):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        loss = tokenizer_loss(x, out, LossWeights(l1=1.0, l2=1.0, perceptual=0.0))
        opt.zero_grad()
        loss.total.backward()
        opt.step()
    psnr1, usage = evaluate()
    print(f"overfit: PSNR {psnr0:.2f} -> {psnr1:.2f} dB, {usage.num_used} codes used, perplexity {usage.perplexity:.1f}")
    assert psnr1 > psnr0 + 8.0, (psnr0, psnr1)
    # 256 tokens; the collapsed calibration run used 18 of 1000 codes
    assert usage.num_used > 100 and usage.perplexity > 80, usage


def test_safetensors_export_round_trip(tmp_path):
    torch.manual_seed(0)
    for quantizer, patch in (("fsq", 1), ("vq", 2)):
        model = ConvTokenizer(tokenizer_config("tiny", base_channels=8, quantizer=quantizer, vq_codebook_size=32, patch_size=patch))
        x = smooth_images(2, 32, 64)
        model.train()
        model(x)  # VQ: initialise and move the EMA codebook, so its buffers must travel too
        model.eval()
        path = export_tokenizer(model, tmp_path / quantizer, extra={"note": "test"})
        assert path.name == "tokenizer.safetensors"
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["config"]["quantizer"] == quantizer and meta["extra"] == {"note": "test"}
        back = load_tokenizer(tmp_path / quantizer)
        with torch.no_grad():
            a, b = model.encode(x), back.encode(x)
            assert torch.equal(a.indices, b.indices)
            assert torch.equal(model.decode_indices(a.indices), back.decode_indices(b.indices))
    # the weights file is bound to its config by checksum
    (tmp_path / "fsq" / "tokenizer.safetensors").write_bytes((tmp_path / "vq" / "tokenizer.safetensors").read_bytes())
    with pytest.raises(ValueError, match="SHA-256"):
        load_tokenizer(tmp_path / "fsq" / "tokenizer.json")
    with pytest.raises(FileNotFoundError, match="tokenizer file not found"):
        load_tokenizer(tmp_path / "missing")


def test_metrics_and_pixel_conversion():
    x = smooth_images(2, 32, 32)
    assert float(psnr_db(x, x).min()) > 90 and torch.allclose(ssim(x, x), torch.ones(2))
    torch.manual_seed(0)
    noisy = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1)
    assert 15 < float(psnr_db(noisy, x).mean()) < 35 and float(ssim(noisy, x).mean()) < 0.95
    frames = torch.randint(0, 256, (2, 8, 16, 3), dtype=torch.uint8)
    assert torch.equal(images_to_frames(frames_to_images(frames)), frames)


def test_perceptual_loss_from_local_weights_only(tmp_path, caplog):
    assert load_perceptual_loss(None) is None
    with caplog.at_level("WARNING"):
        assert load_perceptual_loss(tmp_path / "vgg16.safetensors") is None
    assert "not found" in caplog.text
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in PerceptualLoss().features.state_dict().items()}
    save_file({f"features.{k}": v for k, v in state.items()}, tmp_path / "vgg16.safetensors")
    loss = load_perceptual_loss(tmp_path / "vgg16.safetensors")
    x = smooth_images(1, 32, 32)
    assert float(loss(x, x)) == 0.0 and float(loss(x, -x)) > 0
    save_file({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="VGG16"):
        load_perceptual_loss(tmp_path / "bad.safetensors")
