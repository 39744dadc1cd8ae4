"""Progress of a training run: one rich bar over all optimizer steps with the loss and an ETA, and a
clock that knows where a resumed run started."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks.progress import ProgressBar

from data.convert import progress_bar


class StepProgressBar(ProgressBar):
    """One rich bar over the whole run (optimizer steps up to max_steps) with loss, elapsed time and ETA.

    Lightning's own bars restart every epoch; here an epoch is only the checkpoint interval.
    """

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self._enabled = True
        self._progress: Any = None
        self._task: Any = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        self._progress = progress_bar()
        self._progress.start()
        self._task = self._progress.add_task(self.label, total=trainer.max_steps, completed=trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._progress is None:
            return
        loss = trainer.callback_metrics.get("train/loss")
        text = f"{self.label} loss {float(loss):.3f}" if loss is not None else self.label
        self._progress.update(self._task, completed=trainer.global_step, description=text)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class Clock(Callback):
    """Global step and wall time when fitting starts (after a resume restored the step); start_step
    stays None when a resumed run had no steps left."""

    def __init__(self) -> None:
        self.start_step: int | None = None
        self.t0 = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start_step, self.t0 = trainer.global_step, time.perf_counter()
