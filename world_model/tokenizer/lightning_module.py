"""Thin Lightning wrapper: batches of uint8 frames -> ConvTokenizer -> tokenizer_loss; logs quality and code use."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from world_model.tokenizer.losses import LossWeights, tokenizer_loss
from world_model.tokenizer.metrics import psnr_db, ssim
from world_model.tokenizer.model import ConvTokenizer, TokenizerConfig
from world_model.tokenizer.perceptual import PerceptualLoss, load_perceptual_loss
from world_model.tokenizer.pixels import frames_to_images
from world_model.tokenizer.quantizer import code_usage


class TokenizerLightningModule(L.LightningModule):
    """AdamW with linear warmup then cosine decay to `min_lr_ratio` * lr over `total_steps`.

    All constructor arguments are plain JSON-able values, so Lightning checkpoints hold no pickled objects.
    """

    def __init__(
        self,
        tokenizer: dict[str, Any],
        lr: float,
        betas: tuple[float, float],
        weight_decay: float,
        warmup_steps: int,
        total_steps: int,
        min_lr_ratio: float,
        loss_weights: dict[str, float],
        perceptual_weights: str | None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = ConvTokenizer(TokenizerConfig.from_dict(tokenizer))
        self.loss_weights = LossWeights(**loss_weights)
        # Kept outside the module tree: frozen, not trained, not saved in checkpoints.
        self._perceptual: list[PerceptualLoss] = []
        if self.loss_weights.perceptual > 0:
            p = load_perceptual_loss(perceptual_weights)
            self._perceptual = [p] if p is not None else []

    def _perceptual_loss(self) -> PerceptualLoss | None:
        if not self._perceptual:
            return None
        self._perceptual[0].to(self.device)
        return self._perceptual[0]

    def _log_codes(self, prefix: str, indices: torch.Tensor) -> None:
        usage = code_usage(indices, self.model.codebook_size)
        self.log(f"{prefix}/code_usage", usage.fraction_used)
        self.log(f"{prefix}/perplexity", usage.perplexity)

    def training_step(self, frames: torch.Tensor, batch_idx: int) -> torch.Tensor:
        images = frames_to_images(frames)
        out = self.model(images)
        loss = tokenizer_loss(images, out, self.loss_weights, self._perceptual_loss())
        self.log_dict(
            {"train/loss": loss.total, "train/l1": loss.l1, "train/l2": loss.l2, "train/quantizer": loss.quantizer,
             "train/perceptual": loss.perceptual, "train/psnr_db": psnr_db(out.reconstruction.detach(), images).mean()},
            prog_bar=False,
        )
        self._log_codes("train", out.encoding.indices)
        return loss.total

    def validation_step(self, frames: torch.Tensor, batch_idx: int) -> None:
        images = frames_to_images(frames)
        out = self.model(images)
        n = images.shape[0]
        self.log("val/psnr_db", psnr_db(out.reconstruction, images).mean(), batch_size=n, prog_bar=True, sync_dist=True)
        self.log("val/ssim", ssim(out.reconstruction, images).mean(), batch_size=n, sync_dist=True)
        self._log_codes("val", out.encoding.indices)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        # fused: one kernel for all parameters (about 20% faster steps on CPU for the tiny model).
        # Lightning refuses gradient clipping with a fused optimizer under mixed precision.
        mixed = self._trainer is not None and str(self.trainer.precision).endswith("-mixed")
        opt = torch.optim.AdamW(
            self.model.parameters(), lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay, fused=not mixed
        )

        def factor(step: int) -> float:
            if step < hp.warmup_steps:
                return (step + 1) / hp.warmup_steps
            progress = min(1.0, (step - hp.warmup_steps) / max(1, hp.total_steps - hp.warmup_steps))
            return hp.min_lr_ratio + (1 - hp.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
