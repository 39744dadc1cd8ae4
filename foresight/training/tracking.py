"""Experiment tracking of every training stage: the loggers a run writes to (trainer.loggers) and
the monitors logged to them (trainer.monitors).

    csv          out/logs/version_N/metrics.csv (+ hparams.yaml)
    tensorboard  out/tensorboard/version_N/events.out.tfevents.*   (tensorboard --logdir out/tensorboard)
    wandb        out/wandb/: offline by default (`wandb sync out/wandb/offline-run-*` uploads it later);
                 online only with trainer.wandb_mode=online; disabled writes nothing

Every (re)start of a run writes a new version_N; a resumed run keeps its wandb run id
(out/wandb/run_id), so its curves go on in the same wandb run. Monitors: `lr` (Lightning's
LearningRateMonitor: every parameter group's learning rate, lr-<Optimizer>[/pgN]) and
`throughput` (`ThroughputMonitor`), every log_every_n_steps optimizer steps.
"""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from data.store.manifest import atomic_write_text
from foresight.training.settings import TrainerSettings
from foresight.training.throughput import ThroughputMonitor

LOG_DIRS = ("logs", "tensorboard", "wandb")  # what the loggers write in a run's directory
WANDB_ID_NAME = "run_id"


def run_loggers(settings: TrainerSettings, out: Path) -> list[Logger]:
    """The loggers of trainer.loggers, writing under `out` (see the module docstring)."""
    loggers: list[Logger] = []
    if "csv" in settings.loggers:
        loggers.append(CSVLogger(str(out), name="logs"))
    if "tensorboard" in settings.loggers:
        loggers.append(TensorBoardLogger(str(out), name="tensorboard", default_hp_metric=False))
    if "wandb" in settings.loggers:
        loggers.append(wandb_logger(settings, out))
    return loggers


def wandb_logger(settings: TrainerSettings, out: Path) -> Logger:
    """A WandbLogger in trainer.wandb_mode, writing to out/wandb/. The mode is also put in the
    environment (WANDB_MODE), so an offline or disabled run never reaches the network whatever the
    environment said before."""
    os.environ["WANDB_MODE"] = settings.wandb_mode
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(project=settings.wandb_project, name=out.resolve().name, save_dir=str(out), id=wandb_run_id(out),
                       offline=settings.wandb_mode == "offline", mode=settings.wandb_mode)


def wandb_run_id(out: Path) -> str:
    """The wandb run id of the run in `out`: made once (rank 0 keeps it in out/wandb/run_id), so a
    resumed run logs on in the same wandb run; a run replaced by trainer.overwrite gets a new one."""
    path = out / "wandb" / WANDB_ID_NAME
    if path.is_file():
        return path.read_text().strip()
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # wandb's id alphabet
    if rank_zero_only.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, run_id + "\n")
    return run_id


def finish_loggers(trainer: L.Trainer, succeeded: bool) -> None:
    """End the stage's wandb run (exit code 0 when the stage finished, else 1), so that a later stage
    in the same process starts its own instead of logging into this one."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        # `experiment` would start a wandb run just to end it when nothing was logged (a failure before fit,
        # a finished run re-run): only a run that exists is finished.
        if isinstance(logger, WandbLogger) and trainer.is_global_zero and logger._experiment is not None:
            logger.experiment.finish(exit_code=0 if succeeded else 1)


class StepLearningRateMonitor(LearningRateMonitor):
    """Lightning's LearningRateMonitor, logging once per optimizer step: with gradient accumulation
    it would log the same step again before every accumulated batch."""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if batch_idx % trainer.accumulate_grad_batches == 0:
            super().on_train_batch_start(trainer, pl_module, batch, batch_idx)


def run_monitors(settings: TrainerSettings, samples_per_batch: int | None, tokens_per_sample: int | None) -> list[Callback]:
    """The monitors of trainer.monitors (none without a logger to log them to)."""
    if not settings.loggers:
        return []
    monitors: list[Callback] = []
    if "lr" in settings.monitors:
        monitors.append(StepLearningRateMonitor(logging_interval="step"))
    if "throughput" in settings.monitors:
        monitors.append(ThroughputMonitor(samples_per_batch, tokens_per_sample))
    return monitors
