"""A VQ tokenizer with LlamaGen's checkpoint layout (VQ-16: `vq_ds16_c2i.pt`), for users who have the file.

Written from the published architecture (taming-transformers style encoder/decoder): ch 128,
ch_mult (1, 1, 2, 2, 4), 2 residual blocks per level (3 in the decoder), self-attention at the lowest
resolution and in the middle, z_channels 256, 1x1 quant_conv / post_quant_conv around a 16384 x 8
codebook whose codes and queries are l2-normalised. Module names follow the checkpoint's state-dict
keys exactly (encoder.conv_blocks.{level}.res.{i}.conv1.weight, quantize.embedding.weight, ...), so
a checkpoint loads with a strict key check. Inference only: no training losses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from world_model.tokenizer.encoding import TokenizerEncoding, check_images

# In the released checkpoints but not needed here: a rolling buffer of recently used code ids.
IGNORED_CHECKPOINT_KEYS = frozenset({"quantize.codebook_used"})


@dataclass(frozen=True)
class LlamaGenVQConfig:
    """Defaults are VQ-16; VQ-8 is ch_mult=(1, 2, 2, 4)."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    codebook_size: int = 16384
    codebook_dim: int = 8
    codebook_l2_norm: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        if self.ch % 32 or any(self.ch * m % 32 for m in self.ch_mult):
            raise ValueError(f"LlamaGen VQ widths must be multiples of 32 (GroupNorm with 32 groups), got ch={self.ch}, ch_mult={self.ch_mult}")
        if len(self.ch_mult) < 2 or self.num_res_blocks < 1 or not 2 <= self.codebook_size <= 65536:
            raise ValueError(f"invalid LlamaGen VQ config {self}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6)


class _ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        if c_in != c_out:
            self.nin_shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class _AttnBlock(nn.Module):
    """Single-head self-attention over all h*w positions, with 1x1-conv q/k/v/proj_out."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = _norm(c)
        self.q, self.k, self.v = (nn.Conv2d(c, c, 1) for _ in range(3))
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (rearrange(m(n), "b c h w -> b 1 (h w) c") for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, 1, hw, C), softmax(q k^T / sqrt(C)) v
        return x + self.proj_out(rearrange(out, "b 1 (h w) c -> b c h w", h=h, w=w))


class _Downsample(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # asymmetric padding, as the checkpoint was trained


class _Upsample(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution: `res` blocks, `attn` blocks (lowest resolution only), then a resampler."""

    def __init__(self, c_in: int, c_out: int, num_blocks: int, attention: bool) -> None:
        super().__init__()
        self.res = nn.ModuleList(_ResnetBlock(c_in if i == 0 else c_out, c_out) for i in range(num_blocks))
        self.attn = nn.ModuleList(_AttnBlock(c_out) for _ in range(num_blocks if attention else 0))

    def blocks(self, h: torch.Tensor) -> torch.Tensor:
        for i, res in enumerate(self.res):
            h = res(h)
            if len(self.attn):
                h = self.attn[i](h)
        return h


def _mid(c: int) -> nn.ModuleList:
    return nn.ModuleList([_ResnetBlock(c, c), _AttnBlock(c), _ResnetBlock(c, c)])


class _Encoder(nn.Module):
    def __init__(self, cfg: LlamaGenVQConfig) -> None:
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv2d(3, cfg.ch, 3, padding=1)
        self.conv_blocks = nn.ModuleList()
        c = cfg.ch
        last = len(widths) - 1
        for level, width in enumerate(widths):
            block = _Level(c, width, cfg.num_res_blocks, attention=level == last)
            if level != last:
                block.downsample = _Downsample(width)
            self.conv_blocks.append(block)
            c = width
        self.mid = _mid(c)
        self.norm_out = _norm(c)
        self.conv_out = nn.Conv2d(c, cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.conv_blocks:
            h = block.blocks(h)
            if hasattr(block, "downsample"):
                h = block.downsample(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, z_channels, H/f, W/f)


class _Decoder(nn.Module):
    def __init__(self, cfg: LlamaGenVQConfig) -> None:
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        c = widths[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, c, 3, padding=1)
        self.mid = _mid(c)
        self.conv_blocks = nn.ModuleList()
        last = len(widths) - 1
        for level in reversed(range(len(widths))):  # conv_blocks[0] is the lowest resolution
            block = _Level(c, widths[level], cfg.num_res_blocks + 1, attention=level == last)
            if level != 0:
                block.upsample = _Upsample(widths[level])
            self.conv_blocks.append(block)
            c = widths[level]
        self.norm_out = _norm(c)
        self.conv_out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for block in self.conv_blocks:
            h = block.blocks(h)
            if hasattr(block, "upsample"):
                h = block.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 3, H, W)


class _Codebook(nn.Module):
    def __init__(self, cfg: LlamaGenVQConfig) -> None:
        super().__init__()
        self.l2_norm = cfg.codebook_l2_norm
        self.embedding = nn.Embedding(cfg.codebook_size, cfg.codebook_dim)

    def codes(self) -> torch.Tensor:
        """(K, D) float32 codebook as used for lookup (l2-normalised rows when configured)."""
        e = self.embedding.weight.float()
        return F.normalize(e, dim=-1) if self.l2_norm else e


class LlamaGenVQ(nn.Module):
    """LlamaGen-layout VQ tokenizer, inference only: images (B, 3, H, W) in [-1, 1] <-> (B, H/16, W/16) codes."""

    def __init__(self, config: LlamaGenVQConfig = LlamaGenVQConfig()) -> None:
        super().__init__()
        self.config = config
        self.encoder = _Encoder(config)
        self.decoder = _Decoder(config)
        self.quantize = _Codebook(config)
        self.quant_conv = nn.Conv2d(config.z_channels, config.codebook_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.codebook_dim, config.z_channels, 1)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.config.ch_mult) - 1)

    def describe(self) -> dict[str, Any]:
        return {"architecture": "llamagen-vq", "config": self.config.to_dict()}

    def encode(self, images: torch.Tensor) -> TokenizerEncoding:
        check_images(images, self.downsample_factor)
        z = self.quant_conv(self.encoder(images))  # (B, D, h, w)
        b, _, h, w = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = rearrange(z.float(), "b d h w -> (b h w) d")
            if self.config.codebook_l2_norm:
                flat = F.normalize(flat, dim=-1)
            codes = self.quantize.codes()
            indices = (-2 * flat @ codes.t() + (codes**2).sum(dim=1)[None]).argmin(dim=1)  # (N,)
            quantized = rearrange(codes[indices], "(b h w) d -> b d h w", b=b, h=h, w=w)
        return TokenizerEncoding(indices=indices.view(b, h, w), quantized=quantized, aux_loss=quantized.new_zeros(()))

    def decode(self, quantized: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(quantized))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int64 -> (B, 3, 16h, 16w) images (about [-1, 1])."""
        if indices.ndim != 3:
            raise ValueError(f"indices must be (B, h, w), got {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(f"indices must lie in [0, {self.codebook_size})")
        codes = self.quantize.codes()[indices.long()]  # (B, h, w, D)
        return self.decode(rearrange(codes, "b h w d -> b d h w"))


def infer_llamagen_config(state: dict[str, torch.Tensor]) -> LlamaGenVQConfig:
    """Widths, depth and codebook read off a LlamaGen state dict (VQ-16, VQ-8, ...); VQ-16 defaults
    where a key it needs is absent (the strict key check then reports what is wrong)."""
    d = LlamaGenVQConfig()
    try:
        ch = int(state["encoder.conv_in.weight"].shape[0])
        levels = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.conv_blocks.")})
        mult = tuple(int(state[f"encoder.conv_blocks.{i}.res.0.conv1.weight"].shape[0]) // ch for i in levels)
        blocks = len({k.split(".")[4] for k in state if k.startswith("encoder.conv_blocks.0.res.")})
        z = int(state["encoder.conv_out.weight"].shape[0])
        k, dim = (int(n) for n in state["quantize.embedding.weight"].shape)
    except (KeyError, IndexError, ValueError):
        return d
    return LlamaGenVQConfig(ch=ch, ch_mult=mult, num_res_blocks=blocks, z_channels=z, codebook_size=k, codebook_dim=dim)


def load_llamagen_vq(path: str | Path, config: LlamaGenVQConfig | None = None) -> LlamaGenVQ:
    """Build a LlamaGenVQ from a local checkpoint file holding {"model": state_dict}, in eval mode.

    Read with torch.load(weights_only=True) (no pickled code runs). config None: inferred from the
    tensor shapes (codes are l2-normalised, as in every released LlamaGen VQ). Every key and shape
    must then match; otherwise ValueError lists the missing, unexpected and mis-shaped keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LlamaGen VQ checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ValueError(
            f"cannot read LlamaGen VQ checkpoint {path} with weights_only=True ({exc}); it must hold only "
            f'{{"model": state_dict}} of tensors'
        ) from exc
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        keys = sorted(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f'LlamaGen VQ checkpoint {path} must be a dict with a "model" state dict; found {keys}')
    state = {k: v for k, v in ckpt["model"].items() if k not in IGNORED_CHECKPOINT_KEYS}
    if config is None:
        try:
            config = infer_llamagen_config(state)
        except ValueError as exc:
            raise ValueError(f"{path}: tensor shapes do not describe a LlamaGen VQ: {exc}") from exc
    model = LlamaGenVQ(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or misshaped:

        def listing(name: str, items: list[str]) -> str:
            shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
            return f"\n  {name} ({len(items)}): " + ", ".join(shown) if items else ""

        raise ValueError(
            f"{path} does not match the LlamaGen VQ layout for {config}:"
            + listing("missing keys", missing)
            + listing("unexpected keys", unexpected)
            + listing("shape mismatches", misshaped)
        )
    model.load_state_dict(state, strict=True)
    return model.eval()
