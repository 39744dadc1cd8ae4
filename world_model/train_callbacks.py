"""Lightning callbacks of world-model training: the realised source mix, stage-2 initialisation from a
stage-1 checkpoint (weights and optimizer state), checkpoint metadata."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from world_model.artifact import CHECKPOINT_META_KEY

log = logging.getLogger(__name__)


class SourceMixCounter(Callback):
    """Counts the training windows of each source actually consumed (all ranks together), logs the
    realised proportions as mix/<source>, and keeps the counts in checkpoints so a resumed run
    continues them."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.counts = {n: 0 for n in self.names}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        sources = list(batch["source"])
        step_counts = torch.tensor([sources.count(n) for n in self.names], dtype=torch.int64)
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            step_counts = step_counts.to(pl_module.device)
            dist.all_reduce(step_counts)
        for name, c in zip(self.names, step_counts.tolist()):
            self.counts[name] += int(c)
        for name, p in self.proportions().items():
            pl_module.log(f"mix/{name}", p, batch_size=len(sources), rank_zero_only=True)

    def proportions(self) -> dict[str, float]:
        total = sum(self.counts.values())
        return {n: (c / total if total else 0.0) for n, c in self.counts.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = dict(state_dict.get("counts", {}))
        self.counts = {n: int(saved.get(n, 0)) for n in self.names}


class InitFromCheckpoint(Callback):
    """Stage 2: start from a stage-1 training checkpoint's weights AND optimizer state (AdamW moments
    and step counts), under this run's learning-rate schedule and hyperparameters.

    Runs at fit start, after the optimizer exists. The checkpoint's GPT config must equal this run's.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.loaded_global_step: int | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"init_from: stage-1 checkpoint not found: {self.path}")
        checkpoint = torch.load(self.path, map_location=pl_module.device, weights_only=True)
        for key in ("state_dict", "optimizer_states", "hyper_parameters"):
            if key not in checkpoint:
                raise ValueError(f"init_from {self.path}: not a world-model training checkpoint (no {key!r})")
        theirs = dict(checkpoint["hyper_parameters"].get("gpt", {}))
        ours = dict(pl_module.hparams["gpt"])
        if theirs != ours:
            diff = {k: (theirs.get(k), ours.get(k)) for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)}
            raise ValueError(f"init_from {self.path}: its GPT config differs from this run's (theirs, ours): {diff}")
        pl_module.load_state_dict(checkpoint["state_dict"], strict=True)
        optimizer = trainer.optimizers[0]
        # Keep this run's hyperparameters (LR from its own schedule, betas, weight decay): only the
        # per-parameter state (moments, step counts) comes from stage 1.
        ours_groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        saved = checkpoint["optimizer_states"][0]
        if len(saved["param_groups"]) != len(ours_groups):
            raise ValueError(f"init_from {self.path}: {len(saved['param_groups'])} optimizer parameter groups, this run has {len(ours_groups)}")
        optimizer.load_state_dict(saved)
        for group, hyper in zip(optimizer.param_groups, ours_groups):
            group.update(hyper)
        self.loaded_global_step = int(checkpoint.get("global_step", 0))
        log.info("stage 2: weights and optimizer state from %s (its step %d)", self.path, self.loaded_global_step)


class CheckpointMeta(Callback):
    """Adds JSON-able facts (frame rate, tokenizer identity) to every checkpoint, so a .ckpt alone
    can be evaluated (see `world_model.artifact.load_world_model`)."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_META_KEY] = self.meta
