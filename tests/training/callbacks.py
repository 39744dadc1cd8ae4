"""Callbacks that watch (or end) a training run, for the tests of exact resume, and a short fit
that checkpoints the way the training loop does."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from foresight.training.rng_state import RngStateCheckpoint


class LossRecorder(Callback):
    """The training loss and the first parameter group's learning rate after each optimizer step,
    keyed by the global step."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}
        self.lrs: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[trainer.global_step] = outputs["loss"].item()
        self.lrs[trainer.global_step] = trainer.optimizers[0].param_groups[0]["lr"]


class Kill(Callback):
    """Dies at the start of optimizer step `at_step` (0-based), like a killed job."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated kill")


def fit_recording_losses(module: L.LightningModule, make_loader: Callable, ckpt_dir, ckpt_path=None) -> dict[int, float]:
    """Six CPU steps of `module` on `make_loader()`, a checkpoint every 3 steps in `ckpt_dir` with the
    RNG states (and the module's own generators) in it, as in the training loop; resumes from
    `ckpt_path` when given. Returns the loss of each step this run took."""
    recorder = LossRecorder()
    trainer = L.Trainer(
        max_steps=6,
        accelerator="cpu",
        deterministic=True,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        gradient_clip_val=1.0,
        callbacks=[ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=3, save_top_k=-1), RngStateCheckpoint(), recorder],
    )
    trainer.fit(module, train_dataloaders=make_loader(), ckpt_path=ckpt_path, weights_only=True)
    return recorder.losses
