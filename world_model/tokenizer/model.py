"""Foresight's own image tokenizer: a convolutional autoencoder with a discrete bottleneck.

Encoder: conv -> per level [residual blocks, stride-2 conv] -> residual block -> GroupNorm -> SiLU ->
conv to the code dimension (the normalisation before the last projection bounds what the quantiser
sees; without it FSQ collapsed in calibration). Decoder mirrors it with nearest upsampling.
Downsampling factor = patch_size * 2 ** (len(channel_mult) - 1). With patch_size p > 1 the encoder
starts from the frame's p x p pixel patches stacked as channels (pixel unshuffle, 3 p^2 channels at
H/p x W/p) and the decoder ends by spreading 3 p^2 channels back into patches (pixel shuffle): no layer
runs at full resolution, which on CPU is most of the cost (the tiny profile's patch 2 runs a training
step in about half the time of the same levels at full resolution).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from world_model.tokenizer.encoding import TokenizerEncoding, check_images
from world_model.tokenizer.quantizer import EMAVectorQuantizer, FiniteScalarQuantizer

QUANTIZERS = ("fsq", "vq")


@dataclass(frozen=True)
class TokenizerConfig:
    """Architecture of a ConvTokenizer. Widths are base_channels * channel_mult[level]; patch_size: the
    side in pixels of the patches the first level sees (1: pixels)."""

    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    patch_size: int = 1
    quantizer: str = "fsq"
    fsq_levels: tuple[int, ...] = (8, 5, 5, 5)
    fsq_prequant_penalty: float = 1e-2
    fsq_prequant_bound: float = 2.0
    vq_codebook_size: int = 1024
    vq_code_dim: int = 8
    vq_decay: float = 0.99
    vq_commitment: float = 0.25
    vq_dead_code_threshold: float = 1e-2

    def __post_init__(self) -> None:
        self._check_types()
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        object.__setattr__(self, "fsq_levels", tuple(self.fsq_levels))
        if self.base_channels < 4 or len(self.channel_mult) < 2 or min(self.channel_mult) < 1 or self.num_res_blocks < 1:
            raise ValueError(
                f"tokenizer config: need base_channels >= 4, >= 2 levels of channel_mult >= 1 and num_res_blocks >= 1; "
                f"got base_channels={self.base_channels}, channel_mult={self.channel_mult}, num_res_blocks={self.num_res_blocks}"
            )
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"tokenizer config: quantizer must be one of {QUANTIZERS}, got {self.quantizer!r}")
        if self.codebook_size > 65536:
            raise ValueError(f"tokenizer config: codebook size {self.codebook_size} does not fit the uint16 token store")

    def _check_types(self) -> None:
        """Each field of the right kind (a config often comes from a hand-editable JSON), naming the key:
        ints are ints (not bools or floats), the multiplier and level lists are lists of ints, and the
        float fields are finite numbers in range."""

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        for key in ("base_channels", "num_res_blocks", "patch_size", "vq_codebook_size", "vq_code_dim"):
            value = getattr(self, key)
            if not is_int(value) or value < 1:
                raise ValueError(f"tokenizer config: {key} must be a positive integer, got {value!r}")
        for key in ("channel_mult", "fsq_levels"):
            value = getattr(self, key)
            if not isinstance(value, (list, tuple)) or not value or not all(is_int(v) for v in value):
                raise ValueError(f"tokenizer config: {key} must be a non-empty list of integers, got {value!r}")
        if min(self.fsq_levels) < 2:
            raise ValueError(f"tokenizer config: fsq_levels must all be >= 2, got {list(self.fsq_levels)}")
        non_negative = ("fsq_prequant_penalty", "vq_commitment", "vq_dead_code_threshold")
        for key in (*non_negative, "fsq_prequant_bound", "vq_decay"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
                raise ValueError(f"tokenizer config: {key} must be a finite number, got {value!r}")
        for key in non_negative:
            if getattr(self, key) < 0:
                raise ValueError(f"tokenizer config: {key} must be >= 0, got {getattr(self, key)!r}")
        if not self.fsq_prequant_bound > 0 or not 0 <= self.vq_decay < 1:
            raise ValueError(
                f"tokenizer config: need fsq_prequant_bound > 0 and vq_decay in [0, 1), "
                f"got fsq_prequant_bound={self.fsq_prequant_bound!r}, vq_decay={self.vq_decay!r}"
            )

    @property
    def downsample_factor(self) -> int:
        return self.patch_size * 2 ** (len(self.channel_mult) - 1)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.fsq_levels) if self.quantizer == "fsq" else self.vq_codebook_size

    @property
    def code_dim(self) -> int:
        return len(self.fsq_levels) if self.quantizer == "fsq" else self.vq_code_dim

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TokenizerConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"tokenizer config: unknown keys {sorted(unknown)}; known keys are {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# Size registry. tiny: 8x (64x128 -> 8x16 tokens) for CPU runs; small/base: 16x as in the reference
# (288x512 -> 18x32). Codebooks follow the FSQ paper's level choices for ~2^10, 2^12 and 2^14 codes.
TOKENIZER_SIZES: dict[str, TokenizerConfig] = {
    "tiny": TokenizerConfig(base_channels=32, channel_mult=(1, 2, 2, 4), num_res_blocks=1, fsq_levels=(8, 5, 5, 5)),
    "small": TokenizerConfig(base_channels=64, channel_mult=(1, 1, 2, 2, 4), num_res_blocks=1, fsq_levels=(7, 5, 5, 5, 5)),
    "base": TokenizerConfig(base_channels=128, channel_mult=(1, 1, 2, 2, 4), num_res_blocks=2, fsq_levels=(8, 8, 8, 6, 5)),
}


def tokenizer_config(size: str = "tiny", **overrides: Any) -> TokenizerConfig:
    """A registry size with some fields replaced, e.g. tokenizer_config("tiny", quantizer="vq")."""
    if size not in TOKENIZER_SIZES:
        raise ValueError(f"unknown tokenizer size {size!r}; expected one of {sorted(TOKENIZER_SIZES)}")
    return TokenizerConfig.from_dict({**TOKENIZER_SIZES[size].to_dict(), **overrides})


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with about 4+ channels per group (32 groups from 128 channels up)."""
    return nn.GroupNorm(max(1, math.gcd(32, channels // 4)), channels, eps=1e-6)


class ResBlock(nn.Module):
    """Pre-activation residual block: (GN, SiLU, conv3x3) x 2 plus a 1x1 shortcut when widths differ."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = group_norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = group_norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        widths = [cfg.base_channels * m for m in cfg.channel_mult]
        self.patch_size = cfg.patch_size
        self.conv_in = nn.Conv2d(3 * cfg.patch_size**2, widths[0], 3, padding=1)
        layers: list[nn.Module] = []
        c = widths[0]
        for level, width in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(c, width))
                c = width
            if level < len(widths) - 1:
                layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        layers.append(ResBlock(c, c))
        self.body = nn.Sequential(*layers)
        self.norm_out = group_norm(c)
        self.conv_out = nn.Conv2d(c, cfg.code_dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.patch_size > 1:
            x = F.pixel_unshuffle(x, self.patch_size)  # (B, 3 p^2, H/p, W/p)
        h = self.body(self.conv_in(x))  # (B, C_last, H/f, W/f)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, D, H/f, W/f)


class Upsample(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        widths = [cfg.base_channels * m for m in cfg.channel_mult][::-1]
        c = widths[0]
        self.conv_in = nn.Conv2d(cfg.code_dim, c, 3, padding=1)
        layers: list[nn.Module] = [ResBlock(c, c)]
        for level, width in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(c, width))
                c = width
            if level < len(widths) - 1:
                layers.append(Upsample(c))
        self.body = nn.Sequential(*layers)
        self.norm_out = group_norm(c)
        self.patch_size = cfg.patch_size
        self.conv_out = nn.Conv2d(c, 3 * cfg.patch_size**2, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.body(self.conv_in(z))  # (B, C_first, H/p, W/p)
        out = self.conv_out(F.silu(self.norm_out(h)))  # (B, 3 p^2, H/p, W/p)
        # (B, 3, H, W), unbounded; clamp when converting to pixels
        return F.pixel_shuffle(out, self.patch_size) if self.patch_size > 1 else out


@dataclass(frozen=True)
class TokenizerOutput:
    """reconstruction (B, 3, H, W) float (about [-1, 1], not clamped) and the encoding it came from."""

    reconstruction: torch.Tensor
    encoding: TokenizerEncoding


class ConvTokenizer(nn.Module):
    """images (B, 3, H, W) float in [-1, 1] <-> (B, H/f, W/f) int64 code indices."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        if config.quantizer == "fsq":
            self.quantizer: FiniteScalarQuantizer | EMAVectorQuantizer = FiniteScalarQuantizer(
                config.fsq_levels, config.fsq_prequant_penalty, config.fsq_prequant_bound
            )
        else:
            self.quantizer = EMAVectorQuantizer(
                config.vq_codebook_size, config.vq_code_dim, config.vq_decay, config.vq_commitment, config.vq_dead_code_threshold
            )

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    def describe(self) -> dict[str, Any]:
        return {"architecture": "foresight-conv-tokenizer", "config": self.config.to_dict()}

    def encode(self, images: torch.Tensor) -> TokenizerEncoding:
        check_images(images, self.downsample_factor)
        return self.quantizer(self.encoder(images))

    def decode(self, quantized: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) code vectors -> (B, 3, h*f, w*f) images."""
        return self.decoder(quantized)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int64 -> (B, 3, h*f, w*f) images (about [-1, 1])."""
        if indices.ndim != 3:
            raise ValueError(f"indices must be (B, h, w), got {tuple(indices.shape)}")
        return self.decode(self.quantizer.embed_indices(indices.long()))

    def forward(self, images: torch.Tensor) -> TokenizerOutput:
        encoding = self.encode(images)
        return TokenizerOutput(self.decode(encoding.quantized), encoding)
