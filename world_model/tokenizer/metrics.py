"""Reconstruction quality: PSNR and SSIM of images in [-1, 1], measured after rounding to 8-bit
pixels (what a viewer, and the clip store, would see)."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from world_model.tokenizer.pixels import to_pixels01


def psnr_db(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR in dB per image of two (B, 3, H, W) batches in [-1, 1] (peak = full 8-bit range)."""
    mse = ((to_pixels01(reconstruction) - to_pixels01(target)) ** 2).flatten(1).mean(dim=1)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


def ssim(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) SSIM per image (11x11 Gaussian window, sigma 1.5) of two (B, 3, H, W) batches in [-1, 1]."""
    return structural_similarity_index_measure(
        to_pixels01(reconstruction), to_pixels01(target), data_range=1.0, reduction="none"
    )
