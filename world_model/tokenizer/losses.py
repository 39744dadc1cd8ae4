"""Training loss of the tokenizer: L1 + L2 on pixels, the quantiser's auxiliary loss, and an
optional perceptual term."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from world_model.tokenizer.model import TokenizerOutput
from world_model.tokenizer.perceptual import PerceptualLoss


@dataclass(frozen=True)
class LossWeights:
    l1: float
    l2: float
    perceptual: float

    def __post_init__(self) -> None:
        if min(self.l1, self.l2, self.perceptual) < 0 or self.l1 + self.l2 == 0:
            raise ValueError(f"loss weights must be >= 0 with l1 + l2 > 0, got {self}")


@dataclass(frozen=True)
class LossBreakdown:
    """Scalars: total = l1 * w_l1 + l2 * w_l2 + perceptual * w_p + quantizer (already weighted)."""

    total: torch.Tensor
    l1: torch.Tensor
    l2: torch.Tensor
    perceptual: torch.Tensor
    quantizer: torch.Tensor


def tokenizer_loss(
    images: torch.Tensor, output: TokenizerOutput, weights: LossWeights, perceptual: PerceptualLoss | None = None
) -> LossBreakdown:
    """Loss of one batch; images and output.reconstruction (B, 3, H, W) in [-1, 1]."""
    rec = output.reconstruction.float()
    target = images.float()
    l1 = F.l1_loss(rec, target)
    l2 = F.mse_loss(rec, target)
    p = perceptual(rec, target) if perceptual is not None and weights.perceptual > 0 else rec.new_zeros(())
    q = output.encoding.aux_loss.float()
    total = weights.l1 * l1 + weights.l2 * l2 + weights.perceptual * p + q
    return LossBreakdown(total=total, l1=l1, l2=l2, perceptual=p, quantizer=q)
