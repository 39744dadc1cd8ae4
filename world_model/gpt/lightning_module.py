"""Thin Lightning module training the video GPT on next-token prediction.

Batches are dicts with "tokens" (B, T, h, w) int64 (as `TokenWindowDataset` yields, optionally
with "source" names for per-source validation loss and "ego_motion" (B, T, 3) motions into each
frame, NaN = unknown) or plain token tensors. Gradient clipping, precision (bf16 autocast) and the
step budget are Trainer settings.

Conditioning dropout: a model with ego_motion_input sees, in training, every motion of a window
dropped (unknown) with probability `ego_motion_dropout`, drawn per window from the module's own
seeded generator (saved in checkpoints, so a resumed run drops the same windows), so one model
predicts with and without motions; 1.0 trains VaViM's unconditioned model. Validation runs with
the motions (val/loss) and, for a conditioned model, without them too (val/loss_uncond).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from world_model.gpt.config import GPTConfig
from world_model.gpt.ego_motion import drop_motions
from world_model.gpt.model import GPT
from world_model.optim import OptimConfig, adamw_with_schedule


def _as_gpt_config(value: GPTConfig | Mapping[str, Any]) -> GPTConfig:
    return value if isinstance(value, GPTConfig) else GPTConfig.from_dict(dict(value))


def _as_optim_config(value: OptimConfig | Mapping[str, Any]) -> OptimConfig:
    return value if isinstance(value, OptimConfig) else OptimConfig.from_dict(value)


class GPTLightningModule(L.LightningModule):
    """Next-token training of `GPT`; hparams hold both configs as plain dicts, so a checkpoint
    rebuilds the model (`load_gpt_from_checkpoint`) and loads with `weights_only=True`.

    Trained through `foresight.training.train_stage`, whose checkpoints carry the RNG states, so
    dropout continues exactly on resume (single process; each DDP rank would need its own).
    """

    def __init__(
        self, gpt: GPTConfig | Mapping[str, Any], optim: OptimConfig | Mapping[str, Any], compile_model: bool = False,
        ego_motion_dropout: float = 0.0, seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(ego_motion_dropout) <= 1.0:
            raise ValueError(f"ego_motion_dropout must be in [0, 1], got {ego_motion_dropout}")
        self.gpt_config = _as_gpt_config(gpt)
        self.optim_config = _as_optim_config(optim)
        self.ego_motion_dropout = float(ego_motion_dropout)
        self.save_hyperparameters({
            "gpt": asdict(self.gpt_config), "optim": asdict(self.optim_config), "compile_model": compile_model,
            "ego_motion_dropout": self.ego_motion_dropout, "seed": seed,
        })
        self.model = GPT(self.gpt_config)
        if compile_model:
            self.model.compile()  # in place: state_dict keys are unchanged
        # Only a conditioned model draws (an unconditioned run's checkpoints stay as they were).
        self.dropout_generator = torch.Generator().manual_seed(seed) if self.gpt_config.ego_motion_input else None
        if self.dropout_generator is not None:
            self.checkpointed_generators = {"ego_motion_dropout": self.dropout_generator}  # saved by the training loop

    @staticmethod
    def _tokens(batch: torch.Tensor | Mapping[str, Any]) -> torch.Tensor:
        return batch["tokens"] if isinstance(batch, Mapping) else batch  # (B, T, h, w)

    def _ego_motion(self, batch: torch.Tensor | Mapping[str, Any]) -> torch.Tensor | None:
        """The batch's motions (B, T, 3) for a conditioned model, else None."""
        if not self.gpt_config.ego_motion_input or not isinstance(batch, Mapping) or "ego_motion" not in batch:
            return None
        return batch["ego_motion"]

    def _warped(self, batch: torch.Tensor | Mapping[str, Any], ego_motion: torch.Tensor | None) -> torch.Tensor | None:
        """The batch's warped previous-frame tokens (B, T, h, w) for a model with prev_frame_warp, -1
        (unknown) wherever the motion into the frame is unknown (a dropped window, a clip without
        poses): the model sees a warped frame exactly when it is told the motion, as in a rollout."""
        if not self.gpt_config.prev_frame_warp or not isinstance(batch, Mapping) or "warped_prev" not in batch or ego_motion is None:
            return None
        warped = batch["warped_prev"]
        known = torch.isfinite(ego_motion[:, : warped.shape[1]]).all(dim=-1)  # (B, T)
        return torch.where(known[..., None, None], warped, torch.full_like(warped, -1))

    def _dropped(self, ego_motion: torch.Tensor) -> torch.Tensor:
        """ego_motion (B, T, 3) with whole windows dropped (see the module docstring). Every rank draws
        for all ranks' windows and keeps its own row, so ranks drop independently and stay in step."""
        assert self.dropout_generator is not None
        world_size, rank = (self.trainer.world_size, self.global_rank) if self._trainer is not None else (1, 0)
        uniform = torch.rand(world_size, ego_motion.shape[0], generator=self.dropout_generator)[rank]  # (B,)
        return drop_motions(ego_motion, self.ego_motion_dropout, uniform)

    def training_step(self, batch: torch.Tensor | Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        tokens = self._tokens(batch)
        ego_motion = self._ego_motion(batch)
        if ego_motion is not None:
            # Always passed (all NaN when dropped), so the projection is part of every step's graph (DDP).
            ego_motion = self._dropped(ego_motion)
        out = self.model(tokens, targets=tokens, ego_motion=ego_motion, warped_prev=self._warped(batch, ego_motion))
        batch_size = tokens.shape[0]
        self.log("train/loss", out.loss, prog_bar=True, batch_size=batch_size)
        self.log("train/token_acc", _next_token_accuracy(out.logits.detach(), tokens), batch_size=batch_size)
        # Peak-group LR (muP hidden groups run lower by width_mult).
        self.log("train/lr", max(g["lr"] for g in self.trainer.optimizers[0].param_groups), batch_size=batch_size)
        return out.loss

    def validation_step(self, batch: torch.Tensor | Mapping[str, Any], batch_idx: int) -> None:
        tokens = self._tokens(batch)
        ego_motion = self._ego_motion(batch)
        out = self.model(tokens, targets=tokens, ego_motion=ego_motion, warped_prev=self._warped(batch, ego_motion))
        batch_size = tokens.shape[0]
        self.log("val/loss", out.loss, prog_bar=True, batch_size=batch_size, sync_dist=True)
        if self.gpt_config.ego_motion_input:
            self.log("val/loss_uncond", self.model(tokens, targets=tokens).loss, batch_size=batch_size, sync_dist=True)
        self.log("val/token_acc", _next_token_accuracy(out.logits, tokens), batch_size=batch_size, sync_dist=True)
        if isinstance(batch, Mapping) and "source" in batch:
            # Not synced across ranks: a rank whose batches lack a source would stall the collective.
            per_sequence = F.cross_entropy(out.logits[:, :-1].transpose(1, 2).float(), tokens.flatten(1)[:, 1:], reduction="none").mean(dim=1)  # (B,)
            sources = list(batch["source"])
            for name in sorted(set(sources)):
                mask = torch.tensor([s == name for s in sources], device=per_sequence.device)
                self.log(f"val/loss/{name}", per_sequence[mask].mean(), batch_size=int(mask.sum()))

    def configure_optimizers(self) -> dict[str, Any]:
        o = self.optim_config
        return adamw_with_schedule(self.model.param_groups(o.lr, o.weight_decay), o)


def _next_token_accuracy(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Fraction of positions whose argmax logit (B, L, V) is the next token of tokens (B, T, h, w)."""
    return (logits[:, :-1].argmax(dim=-1) == tokens.flatten(1)[:, 1:]).float().mean()


def load_gpt_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> GPT:
    """The GPT of a `GPTLightningModule` checkpoint (config from its hparams), in eval mode."""
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    for key in ("hyper_parameters", "state_dict"):
        if key not in checkpoint:
            raise ValueError(f"{path}: not a GPTLightningModule checkpoint (no {key!r})")
    hparams = checkpoint["hyper_parameters"]
    if "gpt" not in hparams:
        raise ValueError(f"{path}: checkpoint hparams hold no 'gpt' config")
    model = GPT(GPTConfig.from_dict(dict(hparams["gpt"])))
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    model.load_state_dict(state)
    return model.eval()
