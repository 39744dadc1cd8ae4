"""One training loop for every stage (tokenizer, world model, planner): the stage brings its
LightningModule, its data and its export; the loop owns everything around Lightning.

What the loop owns, from the `trainer` config group (`TrainerSettings`) and the stage's cadence
(`TrainingStage`): accelerator, devices, nodes, strategy (DDP, FSDP with the stage's blocks as
units), precision (`auto` decided on this machine), CPU threads, gradient accumulation (every
cadence counts optimizer steps), loggers (CSV, TensorBoard, wandb offline unless asked for online)
with learning-rate and throughput monitors (`foresight.training.tracking`), an optional moving
average of the weights (`foresight.training.ema`), checkpoints (every N steps and `last.ckpt`,
the newest `keep_checkpoints` periodic ones kept, RNG states, `final.ckpt` with the state at the
end; each written whole or not at all, `foresight.training.checkpointing.AtomicCheckpointIO`),
resuming from the newest intact checkpoint in `out/checkpoints` or the one trainer.ckpt_path
names (`foresight.training.resume`; weights_only=True, after checking the checkpoint is a run of
the same model and config), the progress bar with ETA, the clock, and `out/train_summary.json`
(written atomically by rank 0), and MKL's math kernels chosen before any work
(`foresight.training.precision.settle_vml_kernels`: a process's first steps at full accuracy).

How a run fails (`prepare_run`, `train_stage`):
- a NaN or inf in the stage's config is refused before work starts, naming the key;
- a rerun whose config differs from the run it would resume (out/run_config.json) is refused,
  listing the keys, unless trainer.overwrite=true, which replaces that run with a fresh one;
- a rerun whose checkpoints are all unreadable is refused the same way, except when all there is
  is the cut-short first checkpoint of a run of this config: then it starts over (nothing is lost);
- a non-finite loss or weights stop training naming the step (`NonFiniteTrainingError`); no
  checkpoint of that state is written and nothing is exported;
- a run stopped by SIGTERM (or otherwise before max_steps) is not finished: nothing is exported,
  no train_summary.json is written, and `TrainingInterrupted` exits the process with 128 + the
  signal number.

    stage = TrainingStage(...)                                # the stage's cadence and its config
    start = prepare_run(stage, settings, seed)                # checks; where a resumed run goes on
    ... build the module and data ...                         # the data order depends only on (seed, step)
    summary = train_stage(stage, module, settings, export, start, datamodule=data)
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from data.store.manifest import atomic_write_text
from foresight.training.checkpointing import AtomicCheckpointIO, PeriodicCheckpoints, remove_partial_writes
from foresight.training.ema import ExponentialMovingAverage
from foresight.training.finite import FiniteTrainingGuard, require_finite
from foresight.training.precision import settle_vml_kernels
from foresight.training.progress import Clock, StepProgressBar
from foresight.training.resume import (
    FRESH,
    ResumePoint,
    UnreadableCheckpoints,
    checkpoint_dir,
    chosen_resume_point,
    find_resume_point,
    first_checkpoint_cut_short,
    set_aside_cut_short,
    set_aside_newer,
)
from foresight.training.rng_state import RngStateCheckpoint
from foresight.training.run_record import RECORD_NAME, RunRecord, as_json, discard_run, flatten
from foresight.training.settings import TrainerSettings
from foresight.training.tracking import LOG_DIRS, finish_loggers, run_loggers, run_monitors

log = logging.getLogger(__name__)
SUMMARY_NAME = "train_summary.json"
# What the loop writes in a run's directory (removed, with the stage's exports, when trainer.overwrite replaces a run).
RUN_FILES = ("checkpoints", *LOG_DIRS, SUMMARY_NAME, RECORD_NAME)


@dataclass(frozen=True)
class TrainingStage:
    """What a stage tells the loop.

    name: the stage ("tokenizer", "world model", "planner"), for the progress bar and logs.
    out: the run directory (checkpoints/, logs/, run_config.json, train_summary.json, the export).
    max_steps, val_every_n_steps, checkpoint_every_n_steps, log_every_n_steps: the cadence [optimizer steps].
    grad_clip: gradient-norm clip (0: none).
    architecture: hparams keys that must equal a checkpoint's for it to be resumed (e.g. ("gpt",)).
    fsdp_units: module classes each wrapped as one FSDP unit under strategy=fsdp (e.g. the GPT block).
    config: the stage command's resolved config (what the run computes from), recorded in
        out/run_config.json; a rerun resuming the run must ask for the same (`foresight.training.run_record`).
        Every stage command passes it; empty (a stage built outside a command) records and checks nothing.
    max_steps_key: the dotted key of max_steps in `config` (e.g. "world_model.max_steps").
    exports: names of what the stage's export writes in `out` (removed when trainer.overwrite replaces the run).
    batch_size: samples per batch and process, for the throughput monitor (None: not known).
    tokens_per_sample: tokens the model trains on per sample (e.g. a world-model window), for the
        throughput monitor (None: the stage does not count tokens).
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
    config: Mapping[str, Any]
    max_steps_key: str
    exports: tuple[str, ...]
    batch_size: int | None = None
    tokens_per_sample: int | None = None

    def __post_init__(self) -> None:
        require_finite(self.config, f"train {self.name}")
        configured = flatten(self.config).get(self.max_steps_key)
        if self.config and configured != self.max_steps:
            raise ValueError(f"train {self.name}: config key {self.max_steps_key!r} is {configured!r}, the stage trains {self.max_steps} steps")


class TrainingInterrupted(SystemExit):
    """A stage stopped before max_steps by a signal (or anything else that ended fit early): the run
    is not finished, nothing was exported, and the process exits with 128 + the signal number (1
    without one). Rerunning the same command resumes from its last checkpoint."""

    def __init__(self, message: str, signum: int | None) -> None:
        super().__init__(128 + signum if signum else 1)
        self.message = message

    def __str__(self) -> str:
        return self.message


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

    def samples_per_second(self, batch_size: int) -> float:
        """Training samples per second of this run, all processes and accumulated batches together,
        for `batch_size` samples per batch and process."""
        samples = self.steps_run * batch_size * self.trainer.world_size * self.trainer.accumulate_grad_batches
        return samples / max(self.seconds, 1e-9)

    @property
    def final_checkpoint(self) -> Path:
        """The full training state at the end of the run (checkpoints/final.ckpt): what an export
        reads when the module in memory is sharded (FSDP) or compiled."""
        return checkpoint_dir(Path(self.trainer.default_root_dir)) / "final.ckpt"


def prepare_run(stage: TrainingStage, settings: TrainerSettings, seed: int) -> ResumePoint:
    """Set this process up for `stage` (CPU threads, seeds) and decide where its run starts, before
    any work: the newest intact checkpoint in out/checkpoints (`find_resume_point`), after checking
    that the run it holds was started with the same config (out/run_config.json). A run of another
    config, or one with no readable checkpoint, is refused with the reason (ValueError /
    UnreadableCheckpoints) unless trainer.overwrite=true: then it is removed and a fresh run starts.
    A run killed while writing its first checkpoint, with nothing else of it in `out` but its own
    record, starts over without trainer.overwrite (`_restart_after_cut_first_checkpoint`).
    With trainer.ckpt_path, the run starts from that checkpoint instead (`_chosen_run`).
    Records the config of the run (rank 0) and returns where it starts. Before any of it, MKL's math
    kernels are chosen on one thread (`settle_vml_kernels`): otherwise the first optimizer step of a
    process (a fresh run's or a resumed one's) may be computed at low accuracy on a loaded machine,
    and a resumed run would not repeat the uninterrupted one byte for byte."""
    settle_vml_kernels()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    L.seed_everything(seed, workers=True, verbose=False)
    out = Path(stage.out)
    if rank_zero_only.rank == 0:
        remove_partial_writes(checkpoint_dir(out))  # what kills left of checkpoint writes: never a checkpoint
    if settings.ckpt_path is not None:
        return _chosen_run(stage, settings)
    try:
        start, record = _run_to_resume(stage)
    except (UnreadableCheckpoints, ValueError) as exc:
        start, record = FRESH, None
        if settings.overwrite:
            log.warning("%s; trainer.overwrite=true: replacing that run with a fresh one", exc)
            if rank_zero_only.rank == 0:
                discard_run(out, (*RUN_FILES, *stage.exports))
        elif not (isinstance(exc, UnreadableCheckpoints) and _restart_after_cut_first_checkpoint(stage)):
            raise type(exc)(f"{exc}. Rerun with trainer.overwrite=true to replace that run with a fresh one, or choose another `out`") from exc
    if stage.config and rank_zero_only.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if record is not None:
            record.continued(stage.config, start.start_step, stage.max_steps).write(out)
        elif start.checkpoint is None:
            RunRecord.fresh(stage.config, stage.max_steps).write(out)
        # else: a run from before run records; nothing is written into a directory not yet known to be this stage's
    return start


def _restart_after_cut_first_checkpoint(stage: TrainingStage) -> bool:
    """True when out/checkpoints holds only a cut-short write of the run's first checkpoint
    (`first_checkpoint_cut_short`) and nothing else of another run is there (no export of the stage,
    no record of another config): starting over then loses nothing. The cut-short file is set aside
    in out/checkpoints/cut_short/ (rank 0)."""
    out = Path(stage.out)
    cut = first_checkpoint_cut_short(out, stage.checkpoint_every_n_steps)
    if cut is None or any((out / name).exists() for name in stage.exports):
        return False
    if stage.config:
        record = RunRecord.read(out)
        if record is not None and record.differences(stage.config, stage.max_steps_key, 0):
            return False
    if rank_zero_only.rank == 0:
        kept = set_aside_cut_short(cut)
        log.warning("%s: %s was cut short by a kill during the run's first checkpoint (kept as %s); nothing to resume, starting over",
                    stage.name, cut, kept)
    return True


def _chosen_run(stage: TrainingStage, settings: TrainerSettings) -> ResumePoint:
    """Where a run with trainer.ckpt_path starts: the chosen checkpoint (`chosen_resume_point`),
    whose own run (its run_config.json beside checkpoints/) must have been started with this config.
    A checkpoint of the run in `out`: its later checkpoints are set aside (`set_aside_newer`) and the
    run goes on from it. One of another directory: `out` must hold no run of its own (or
    trainer.overwrite=true replaces it); the new run's record continues the chosen run's."""
    out = Path(stage.out)
    start = chosen_resume_point(Path(settings.ckpt_path), stage.max_steps, stage.architecture, stage.name)
    chosen = start.checkpoint
    assert chosen is not None
    own = chosen.resolve().parent == checkpoint_dir(out).resolve()
    source = out if own else (chosen.parent.parent if chosen.parent.name == checkpoint_dir("").name else None)
    record = RunRecord.read(source) if (source is not None and stage.config) else None
    if record is not None:
        differences = record.differences(stage.config, stage.max_steps_key, start.start_step)
        if differences:
            raise ValueError(f"trainer.ckpt_path={chosen} is a checkpoint of a run of another model or config (recorded -> requested): "
                             f"{'; '.join(differences)}")
    elif stage.config:
        log.warning("trainer.ckpt_path=%s: no %s beside it; cannot check that its run had this config", chosen, RECORD_NAME)
    if not own and (any(checkpoint_dir(out).glob("*.ckpt")) or (out / RECORD_NAME).is_file()):
        if not settings.overwrite:
            raise ValueError(f"{out} holds a run of its own; resuming trainer.ckpt_path={chosen} there would mix the two. "
                             f"Rerun with trainer.overwrite=true to replace that run, or choose another `out`")
        log.warning("trainer.overwrite=true: replacing the run in %s by one going on from %s", out, chosen)
        if rank_zero_only.rank == 0:
            discard_run(out, (*RUN_FILES, *stage.exports))
    if own and rank_zero_only.rank == 0:
        moved = set_aside_newer(out, start.start_step)
        if moved:
            log.warning("resuming from %s (step %d): its run's later checkpoints moved to %s: %s", chosen, start.start_step,
                        moved[0].parent, ", ".join(p.name for p in moved))
    if stage.config and rank_zero_only.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        base = record or RunRecord(as_json(stage.config), ())
        base.continued(stage.config, start.start_step, stage.max_steps, ckpt_path=str(chosen.resolve())).write(out)
    log.info("%s: starting from the chosen checkpoint %s (step %d)", stage.name, chosen, start.start_step)
    return start


def _run_to_resume(stage: TrainingStage) -> tuple[ResumePoint, RunRecord | None]:
    """Where the run in stage.out goes on, and its record (None for a fresh or unrecorded run).
    ValueError when that run was started with another config; UnreadableCheckpoints when none of
    its checkpoints can be read."""
    start = find_resume_point(stage.out, stage.max_steps)
    if start.checkpoint is None or not stage.config:
        return start, None
    record = RunRecord.read(stage.out)
    if record is None:
        log.warning("%s has no %s: cannot check that the run it resumes had this config", stage.out, RECORD_NAME)
        return start, None
    differences = record.differences(stage.config, stage.max_steps_key, start.start_step)
    if differences:
        raise ValueError(f"{stage.out} holds a run of another model or config (recorded -> requested): {'; '.join(differences)}")
    return start, record


def check_resumable(checkpoint: Path, module: L.LightningModule, keys: Sequence[str]) -> None:
    """ValueError unless the checkpoint's hparams[k] equal the module's for every k in `keys`."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True).get("hyper_parameters", {})
    for key in keys:
        theirs, ours = saved.get(key), module.hparams.get(key)
        if theirs is None and ours is not None:
            found = ", ".join(sorted(saved)) or "none"
            raise ValueError(f"{checkpoint} is not a checkpoint of this stage: it has no {key!r} settings (its hyper-parameters: {found}); "
                             f"choose another `out`")
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


def build_trainer(stage: TrainingStage, settings: TrainerSettings, has_validation: bool, callbacks: Sequence[Callback] = ()) -> L.Trainer:
    """The Lightning Trainer of a stage (see the module docstring)."""
    loggers = run_loggers(settings, Path(stage.out))
    checkpoints = PeriodicCheckpoints(checkpoint_dir(stage.out), stage.checkpoint_every_n_steps, settings.keep_checkpoints)
    all_callbacks: list[Callback] = [RngStateCheckpoint(), FiniteTrainingGuard(stage.name), checkpoints]
    if settings.ema_decay is not None:
        all_callbacks.append(ExponentialMovingAverage(settings.ema_decay))
    all_callbacks.extend(run_monitors(settings, stage.batch_size, stage.tokens_per_sample))
    if settings.progress_bar:
        all_callbacks.append(StepProgressBar(f"train {stage.name}"))
    all_callbacks.extend(callbacks)
    accumulate = settings.accumulate_grad_batches
    return L.Trainer(
        max_steps=stage.max_steps,
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=lightning_strategy(settings, stage),
        precision=settings.resolved_precision,
        gradient_clip_val=stage.grad_clip or None,
        accumulate_grad_batches=accumulate,
        logger=loggers or False,
        callbacks=all_callbacks,
        plugins=[AtomicCheckpointIO()],
        # Lightning counts validation intervals in batches, the stage in optimizer steps.
        val_check_interval=min(stage.val_every_n_steps, stage.max_steps) * accumulate if has_validation else None,
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
    start: ResumePoint,
    *,
    train: Any = None,
    val: Any = None,
    datamodule: Any = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Fit `module` from `start` (what `prepare_run` returned: a checkpoint to resume, the end state
    of a finished run, or nothing), save the final state as final.ckpt, call `export` on every rank
    (it exports and returns the stage's summary fields on rank 0), then write
    out/train_summary.json (steps, steps_this_run, train_seconds, world_size, precision and the
    export's fields) on rank 0 and return it ({} on other ranks).

    Data: `train` (and optionally `val`) DataLoaders, or a `datamodule` with a `has_validation()` method.
    `callbacks` are added to the loop's own (tests use them to observe or interrupt a run).
    Raises NonFiniteTrainingError on a non-finite loss or weights (nothing is exported), and
    TrainingInterrupted when fit stopped before max_steps (nothing is exported) or SIGTERM came
    during the export (no train_summary.json).
    """
    out = Path(stage.out)
    out.mkdir(parents=True, exist_ok=True)
    resume_from = start.checkpoint
    if resume_from is not None:
        check_resumable(resume_from, module, stage.architecture)
        log.info("resuming %s training from %s (step %d)", stage.name, resume_from, start.start_step)
    has_validation = datamodule.has_validation() if datamodule is not None else val is not None
    clock = Clock()
    trainer = build_trainer(stage, settings, has_validation, [clock, *callbacks])
    ckpt_path = str(resume_from) if resume_from else None
    finished = False
    try:  # SIGTERM in fit, or in a validation the export runs, raises Lightning's SIGTERMException: a SystemExit with status 0
        if datamodule is not None:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        else:
            trainer.fit(module, train, val if has_validation else None, ckpt_path=ckpt_path, weights_only=True)
        if trainer.global_step < stage.max_steps:
            raise _interrupted(stage, trainer, signal.SIGTERM if trainer.received_sigterm else None)
        seconds = time.perf_counter() - clock.t0
        begin = trainer.global_step if clock.start_step is None else clock.start_step
        result = FitResult(trainer, module, resume_from, begin, trainer.global_step - begin, seconds)
        # Not over last.ckpt: Lightning's periodic checkpoints are the consistent points to resume from
        # (a state saved after fit ends has already moved on to the next epoch).
        trainer.save_checkpoint(result.final_checkpoint, weights_only=False)
        fields = export(result)
        finished = True
    except SIGTERMException as exc:
        raise _interrupted(stage, trainer, signal.SIGTERM) from exc
    finally:
        finish_loggers(trainer, finished)
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


def _interrupted(stage: TrainingStage, trainer: L.Trainer, signum: int | None) -> TrainingInterrupted:
    cause = f"by {signal.Signals(signum).name}" if signum else "early"
    message = (
        f"{stage.name} training stopped {cause} at step {trainer.global_step} of {stage.max_steps}: the run is not finished. "
        f"Rerun the same command to resume from its last checkpoint in {checkpoint_dir(stage.out)}"
    )
    log.error(message)
    return TrainingInterrupted(message, signum)
