"""Thin Lightning module training the video GPT on next-token prediction.

Batches are dicts with "tokens" (B, T, h, w) int64 (as `TokenWindowDataset` yields, optionally
with "source" names for per-source validation loss) or plain token tensors. Gradient clipping,
precision (bf16 autocast) and the step budget are Trainer settings.
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

    def __init__(self, gpt: GPTConfig | Mapping[str, Any], optim: OptimConfig | Mapping[str, Any], compile_model: bool = False) -> None:
        super().__init__()
        self.gpt_config = _as_gpt_config(gpt)
        self.optim_config = _as_optim_config(optim)
        self.save_hyperparameters({"gpt": asdict(self.gpt_config), "optim": asdict(self.optim_config), "compile_model": compile_model})
        self.model = GPT(self.gpt_config)
        if compile_model:
            self.model.compile()  # in place: state_dict keys are unchanged

    @staticmethod
    def _tokens(batch: torch.Tensor | Mapping[str, Any]) -> torch.Tensor:
        return batch["tokens"] if isinstance(batch, Mapping) else batch  # (B, T, h, w)

    def training_step(self, batch: torch.Tensor | Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        tokens = self._tokens(batch)
        out = self.model(tokens, targets=tokens)
        batch_size = tokens.shape[0]
        self.log("train/loss", out.loss, prog_bar=True, batch_size=batch_size)
        self.log("train/token_acc", _next_token_accuracy(out.logits.detach(), tokens), batch_size=batch_size)
        # Peak-group LR (muP hidden groups run lower by width_mult).
        self.log("train/lr", max(g["lr"] for g in self.trainer.optimizers[0].param_groups), batch_size=batch_size)
        return out.loss

    def validation_step(self, batch: torch.Tensor | Mapping[str, Any], batch_idx: int) -> None:
        tokens = self._tokens(batch)
        out = self.model(tokens, targets=tokens)
        batch_size = tokens.shape[0]
        self.log("val/loss", out.loss, prog_bar=True, batch_size=batch_size, sync_dist=True)
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
