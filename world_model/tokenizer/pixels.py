"""Conversions between stored frames ((B, H, W, 3) uint8) and model images ((B, 3, H, W) float in [-1, 1])."""

from __future__ import annotations

import torch
from einops import rearrange


def frames_to_images(frames: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [-1, 1]."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (B, H, W, 3) uint8, got {tuple(frames.shape)} {frames.dtype}")
    # contiguous NCHW: convolutions on the channels-last view of the frames run several times slower on CPU
    return rearrange(frames, "b h w c -> b c h w").contiguous().float() / 127.5 - 1.0


def images_to_frames(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [-1, 1] -> (B, H, W, 3) uint8 (clamped, rounded)."""
    pixels = torch.round((images.float().clamp(-1, 1) + 1) * 127.5).to(torch.uint8)
    return rearrange(pixels, "b c h w -> b h w c")


def to_pixels01(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [-1, 1] -> float32 in [0, 1], clamped and rounded to 8-bit levels."""
    return torch.round((images.float().clamp(-1, 1) + 1) * 127.5) / 255.0
