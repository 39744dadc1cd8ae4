"""Running sums for scoring predicted frames against the truth, mergeable across batches and sources.

Images are (B, 3, H, W) float in [-1, 1] and are scored on 8-bit pixels (what a viewer sees), like
the tokenizer's reconstruction metrics:
  psnr / ssim: mean over frames of the per-frame value;
  psnr_changed: PSNR of the squared error pooled over the pixels that changed between the last
    context frame and the truth (any channel by more than `threshold` 8-bit levels): a blurry
    or copied frame scores well on static pixels, this is where prediction has to work;
  psnr_road: per-frame PSNR of the lower half of the image (the road ahead for a forward camera).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import torch

from world_model.tokenizer.metrics import psnr_db, ssim
from world_model.tokenizer.pixels import to_pixels01


def _psnr_from_mse(mse: float) -> float:
    return -10.0 * math.log10(max(mse, 1e-10))


@dataclass
class PredictionStats:
    """Sums keyed by metric name (e.g. "psnr_t1", "psnr_copy_last_t1"); `summary` turns them into means."""

    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    sq_err: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    sq_count: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add_mean(self, key: str, values: torch.Tensor) -> None:
        """Accumulate a (B,) tensor of per-item values into the mean `key`."""
        self.sums[key] += float(values.double().sum())
        self.counts[key] += values.numel()

    def add_ratio(self, key: str, hits: float, total: float) -> None:
        """Accumulate hits / total (e.g. correct tokens over tokens)."""
        self.sums[key] += float(hits)
        self.counts[key] += float(total)

    def add_frames(self, suffix: str, prediction: torch.Tensor, truth: torch.Tensor, last: torch.Tensor, threshold: int, with_ssim: bool = True) -> None:
        """Score prediction vs truth (B, 3, H, W): psnr<suffix>, ssim<suffix>, psnr_road<suffix> and the
        pooled psnr_changed<suffix> over pixels where truth differs from `last` (the last context frame)."""
        self.add_mean(f"psnr{suffix}", psnr_db(prediction, truth))
        if with_ssim:
            self.add_mean(f"ssim{suffix}", ssim(prediction, truth))
        h = truth.shape[-2]
        self.add_mean(f"psnr_road{suffix}", psnr_db(prediction[..., h // 2 :, :], truth[..., h // 2 :, :]))
        p, t, l = to_pixels01(prediction), to_pixels01(truth), to_pixels01(last)  # (B, 3, H, W) in [0, 1]
        changed = ((t - l).abs() * 255.0 > threshold).any(dim=1, keepdim=True).expand_as(t)  # (B, 3, H, W)
        self.sq_err[f"psnr_changed{suffix}"] += float(((p - t) ** 2)[changed].double().sum())
        self.sq_count[f"psnr_changed{suffix}"] += float(changed.sum())

    def merge(self, other: "PredictionStats") -> None:
        for mine, theirs in ((self.sums, other.sums), (self.counts, other.counts), (self.sq_err, other.sq_err), (self.sq_count, other.sq_count)):
            for k, v in theirs.items():
                mine[k] += v

    def summary(self) -> dict[str, float | None]:
        """Means and pooled PSNRs; a pooled PSNR over no changed pixel is None."""
        out: dict[str, float | None] = {k: self.sums[k] / self.counts[k] for k in sorted(self.sums) if self.counts[k] > 0}
        for k in sorted(self.sq_err):
            n = self.sq_count[k]
            out[k] = _psnr_from_mse(self.sq_err[k] / n) if n > 0 else None
        return out
