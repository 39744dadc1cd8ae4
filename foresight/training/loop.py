"""One training loop for every stage (tokenizer, world model, planner): the stage brings its
LightningModule, its data and its export; the loop owns everything around Lightning.

What the loop owns, from the `trainer` config group (`TrainerSettings`) and the stage's cadence
(`TrainingStage`): accelerator, devices, nodes, strategy (DDP, FSDP with the stage's blocks as
units), precision (`auto` decided on this machine), CPU threads, loggers (CSV, offline wandb),
checkpoints (every N steps and `last.ckpt`, retention, RNG states, `final.ckpt` with the state at
the end), resuming from `out/checkpoints/last.ckpt` (weights_only=True, after checking the
checkpoint is a run of the same model), the progress bar with ETA, the clock, and `out/train_summary.json` (written atomically by
rank 0).

    settings = TrainerSettings.from_mapping(cfg.trainer)
    start = prepare_run(settings, seed, out).start_step      # where a resumed run goes on
    ... build the module and data (samplers start at `start`) ...
    summary = train_stage(stage, module, settings, export, train=loader, val=val_loader)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger

from data.store.manifest import atomic_write_text
from foresight.training.progress import Clock, StepProgressBar
from foresight.training.rng_state import RngStateCheckpoint
from foresight.training.settings import TrainerSettings

log = logging.getLogger(__name__)
SUMMARY_NAME = "train_summary.json"


@dataclass(frozen=True)
class TrainingStage:
    """What a stage tells the loop.

    name: the stage ("tokenizer", "world model", "planner"), for the progress bar and logs.
    out: the run directory (checkpoints/, logs/, train_summary.json, the export).
    max_steps, val_every_n_steps, checkpoint_every_n_steps, log_every_n_steps: the cadence [optimizer steps].
    grad_clip: gradient-norm clip (0: none).
    architecture: hparams keys that must equal a checkpoint's for it to be resumed (e.g. ("gpt",)).
    fsdp_units: module classes each wrapped as one FSDP unit under strategy=fsdp (e.g. the GPT block).
    """

    name: str
    out: Path
    max_steps: int
    val_every_n_steps: int
    checkpoint_every_n_steps: int
    log_every_n_steps: int
    grad_clip: float
    architecture: tuple[str, ...]
    fsdp_units: tuple[type[torch.nn.Module], ...]


@dataclass(frozen=True)
class ResumePoint:
    """Where a run starts: `checkpoint` (out/checkpoints/last.ckpt, or None for a fresh run) and its step."""

    checkpoint: Path | None
    start_step: int


@dataclass(frozen=True)
class FitResult:
    """A finished fit, handed to the stage's export on every rank."""

    trainer: L.Trainer
    module: L.LightningModule
    resumed_from: Path | None
    start_step: int
    steps_run: int
    seconds: float

    @property
    def is_global_zero(self) -> bool:
        return bool(self.trainer.is_global_zero)

    @property
    def final_checkpoint(self) -> Path:
        """The full training state at the end of the run (checkpoints/final.ckpt): what an export
        reads when the module in memory is sharded (FSDP) or compiled."""
        return checkpoint_dir(Path(self.trainer.default_root_dir)) / "final.ckpt"


def checkpoint_dir(out: Path) -> Path:
    return Path(out) / "checkpoints"


def checkpoint_step(path: Path) -> int:
    """The optimizer step stored in a Lightning checkpoint (0 when it has none)."""
    return int(torch.load(path, map_location="cpu", weights_only=True).get("global_step", 0))


def prepare_run(settings: TrainerSettings, seed: int, out: str | Path, resume: bool = True) -> ResumePoint:
    """Set this process up for a stage (CPU threads, seeds) and find where the run starts: the step
    of out/checkpoints/last.ckpt when it exists (and `resume`), else 0."""
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    L.seed_everything(seed, workers=True, verbose=False)
    last = checkpoint_dir(Path(out)) / "last.ckpt"
    if resume and last.is_file():
        return ResumePoint(last, checkpoint_step(last))
    return ResumePoint(None, 0)


def check_resumable(checkpoint: Path, module: L.LightningModule, keys: Sequence[str]) -> None:
    """ValueError unless the checkpoint's hparams[k] equal the module's for every k in `keys`."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True).get("hyper_parameters", {})
    for key in keys:
        theirs, ours = saved.get(key), module.hparams.get(key)
        if theirs != ours:
            if isinstance(theirs, dict) and isinstance(ours, dict):
                diff = {k: (theirs.get(k), ours.get(k)) for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)}
            else:
                diff = {key: (theirs, ours)}
            raise ValueError(f"{checkpoint} holds a run of another model (saved, requested): {diff}; choose another `out` to start afresh")


def lightning_strategy(settings: TrainerSettings, stage: TrainingStage) -> Any:
    """The Lightning strategy of `settings.strategy`; fsdp wraps each of the stage's `fsdp_units` as one unit."""
    if settings.strategy != "fsdp":
        return settings.strategy
    from lightning.pytorch.strategies import FSDPStrategy

    units = set(stage.fsdp_units) or None
    return FSDPStrategy(sharding_strategy=settings.fsdp_sharding, auto_wrap_policy=units, state_dict_type="full")


def _loggers(settings: TrainerSettings, out: Path) -> list[Logger]:
    loggers: list[Logger] = []
    if "csv" in settings.loggers:
        loggers.append(CSVLogger(str(out), name="logs"))
    if "wandb" in settings.loggers:
        os.environ["WANDB_MODE"] = settings.wandb_mode  # belt and braces: never online
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(project=settings.wandb_project, save_dir=str(out), offline=settings.wandb_mode == "offline", mode=settings.wandb_mode))
    return loggers


def _checkpointing(settings: TrainerSettings, stage: TrainingStage) -> ModelCheckpoint:
    """Every `checkpoint_every_n_steps` steps, plus last.ckpt; `keep_checkpoints` N keeps the newest N."""
    keep = settings.keep_checkpoints
    retention = {"save_top_k": -1} if keep == -1 else {"save_top_k": keep, "monitor": "step", "mode": "max"}
    return ModelCheckpoint(dirpath=checkpoint_dir(stage.out), save_last=True, every_n_train_steps=stage.checkpoint_every_n_steps, **retention)


def build_trainer(stage: TrainingStage, settings: TrainerSettings, has_validation: bool, callbacks: Sequence[Callback] = ()) -> L.Trainer:
    """The Lightning Trainer of a stage (see the module docstring)."""
    all_callbacks: list[Callback] = [RngStateCheckpoint(), _checkpointing(settings, stage)]
    if settings.progress_bar:
        all_callbacks.append(StepProgressBar(f"train {stage.name}"))
    all_callbacks.extend(callbacks)
    return L.Trainer(
        max_steps=stage.max_steps,
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=lightning_strategy(settings, stage),
        precision=settings.resolved_precision,
        gradient_clip_val=stage.grad_clip or None,
        logger=_loggers(settings, stage.out) or False,
        callbacks=all_callbacks,
        val_check_interval=min(stage.val_every_n_steps, stage.max_steps) if has_validation else None,
        check_val_every_n_epoch=None,
        limit_val_batches=None if has_validation else 0,
        log_every_n_steps=stage.log_every_n_steps,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        enable_progress_bar=settings.progress_bar,
        default_root_dir=str(stage.out),
    )


def train_stage(
    stage: TrainingStage,
    module: L.LightningModule,
    settings: TrainerSettings,
    export: Callable[[FitResult], dict[str, Any]],
    *,
    train: Any = None,
    val: Any = None,
    datamodule: Any = None,
    callbacks: Sequence[Callback] = (),
    resume: bool = True,
) -> dict[str, Any]:
    """Fit `module` (resuming from out/checkpoints/last.ckpt, or from final.ckpt when that run already
    reached max_steps), save the final state as final.ckpt, call
    `export` on every rank (it exports and returns the stage's summary fields on rank 0), then write
    out/train_summary.json (steps, steps_this_run, train_seconds, world_size, precision and the
    export's fields) on rank 0 and return it ({} on other ranks).

    Data: `train` (and optionally `val`) DataLoaders, or a `datamodule` with a `has_validation()` method.
    `callbacks` are added to the loop's own (tests use them to observe or interrupt a run).
    """
    out = Path(stage.out)
    out.mkdir(parents=True, exist_ok=True)
    last, final = checkpoint_dir(out) / "last.ckpt", checkpoint_dir(out) / "final.ckpt"
    resume_from = last if resume and last.is_file() else None
    if resume and final.is_file() and checkpoint_step(final) >= stage.max_steps:
        resume_from = final  # a finished run: nothing to train, the export is made again from its end state
    if resume_from is not None:
        check_resumable(resume_from, module, stage.architecture)
        log.info("resuming %s training from %s (step %d)", stage.name, resume_from, checkpoint_step(resume_from))
    has_validation = datamodule.has_validation() if datamodule is not None else val is not None
    clock = Clock()
    trainer = build_trainer(stage, settings, has_validation, [clock, *callbacks])
    if datamodule is not None:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None, weights_only=True)
    else:
        trainer.fit(module, train, val if has_validation else None, ckpt_path=str(resume_from) if resume_from else None, weights_only=True)
    seconds = time.perf_counter() - clock.t0
    start = trainer.global_step if clock.start_step is None else clock.start_step
    result = FitResult(trainer, module, resume_from, start, trainer.global_step - start, seconds)
    # Not over last.ckpt: Lightning's periodic checkpoints are the consistent points to resume from
    # (a state saved after fit ends has already moved on to the next epoch).
    trainer.save_checkpoint(result.final_checkpoint, weights_only=False)
    fields = export(result)
    if not trainer.is_global_zero:
        return {}
    summary = {
        "steps": trainer.global_step,
        "steps_this_run": result.steps_run,
        "train_seconds": round(seconds, 2),
        "world_size": trainer.world_size,
        "precision": str(trainer.precision),
        **fields,
    }
    atomic_write_text(out / SUMMARY_NAME, json.dumps(summary, indent=1, default=str))
    return summary
