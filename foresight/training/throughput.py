"""Training throughput, logged to the run's loggers: how many samples (and tokens, where the stage
knows them) all processes together train on per second of training time."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class ThroughputMonitor(Callback):
    """Every `log_every_n_steps` optimizer steps, over the steps since the last report (logged at the
    0-based index of the last of them, as Lightning logs a step's loss): throughput/steps_per_s, throughput/samples_per_s (`samples_per_batch` per batch and process,
    every accumulated batch counted) and throughput/tokens_per_s (`tokens_per_sample` per sample;
    not logged when None). Time spent in validation is left out; checkpointing is counted."""

    def __init__(self, samples_per_batch: int | None, tokens_per_sample: int | None) -> None:
        self.samples_per_batch, self.tokens_per_sample = samples_per_batch, tokens_per_sample
        self._t0 = 0.0
        self._paused_s = 0.0
        self._pause_t0: float | None = None
        self._batches = 0
        self._from_step = 0

    def _restart(self, step: int) -> None:
        self._t0, self._paused_s, self._batches, self._from_step = time.perf_counter(), 0.0, 0, step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restart(trainer.global_step)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.training:
            self._pause_t0 = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pause_t0 is not None:
            self._paused_s += time.perf_counter() - self._pause_t0
            self._pause_t0 = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._batches += 1
        step = trainer.global_step
        if step <= self._from_step or step % max(trainer.log_every_n_steps, 1):
            return  # no optimizer step since the last report, or not a step to report at
        seconds = max(time.perf_counter() - self._t0 - self._paused_s, 1e-9)
        metrics = {"throughput/steps_per_s": (step - self._from_step) / seconds}
        if self.samples_per_batch is not None:
            samples_per_s = self._batches * self.samples_per_batch * trainer.world_size / seconds
            metrics["throughput/samples_per_s"] = samples_per_s
            if self.tokens_per_sample is not None:
                metrics["throughput/tokens_per_s"] = samples_per_s * self.tokens_per_sample
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step - 1)
        self._restart(step)
