"""`foresight train world_model`: the GPT world model on one or more token stores, with Lightning.

Outputs in `out/`:
  checkpoints/last.ckpt (+ step-N checkpoints every `checkpoint_every_n_steps`): rerunning the same
    command resumes from last.ckpt and continues the same loss curve (model, optimizer, schedule,
    data order, RNG and the source-mix counts are restored);
  world_model.safetensors + world_model.json: the final weights with the GPT config, the frame
    rate and the tokenizer identity (`world_model.artifact.load_world_model` reads them; so does
    it the .ckpt files);
  logs/ (CSV metrics: train/loss, train/lr, mix/<source>, val/loss[/<source>]) and
  train_summary.json (steps, speed, configured vs realised source mix, final losses).

Stage 2 (`init_from=<stage-1 checkpoint>`) starts from stage 1's weights and optimizer state and runs
its own schedule (for the recipe: only the WSD decay phase) on its own source mix.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger

from data.store.manifest import atomic_write_text
from world_model.artifact import WorldModelMeta, export_world_model
from world_model.datamodule import TokenDataModule
from world_model.gpt.lightning_module import GPTLightningModule, OptimConfig, load_gpt_from_checkpoint
from world_model.token_sources import mixing_proportions, parse_sources, source_windows, token_space
from world_model.tokens.reader import TokenStore
from world_model.train_callbacks import CheckpointMeta, InitFromCheckpoint, SourceMixCounter, StepProgressBar
from world_model.train_config import TrainerSettings, TrainWorldModelConfig

log = logging.getLogger(__name__)
SUMMARY_NAME = "train_summary.json"


@dataclass(frozen=True)
class TrainWorldModelResult:
    """summary: train_summary.json's content (empty on ranks other than 0); module: the trained
    Lightning module on this rank; init_step: the stage-1 step stage 2 started from (else None)."""

    summary: dict[str, Any]
    module: GPTLightningModule
    init_step: int | None


class _Clock(Callback):
    """Global step and time when fitting starts (after a resume restored the step)."""

    def __init__(self) -> None:
        self.start_step: int | None = None
        self.t0 = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start_step, self.t0 = trainer.global_step, time.perf_counter()


def _strategy(t: TrainerSettings) -> Any:
    if t.strategy != "fsdp":
        return t.strategy
    from lightning.pytorch.strategies import FSDPStrategy

    from world_model.gpt.model import Block

    return FSDPStrategy(sharding_strategy=t.fsdp_sharding, auto_wrap_policy={Block}, state_dict_type="full")


def _loggers(c: TrainWorldModelConfig, out: Path) -> list[Logger]:
    loggers: list[Logger] = []
    if "csv" in c.loggers:
        loggers.append(CSVLogger(str(out), name="logs"))
    if "wandb" in c.loggers:
        os.environ["WANDB_MODE"] = c.wandb_mode  # belt and braces: never online
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(project=c.wandb_project, save_dir=str(out), offline=c.wandb_mode == "offline", mode=c.wandb_mode))
    return loggers


def _check_resumable(last: Path, gpt: dict[str, Any]) -> None:
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    saved = dict(checkpoint.get("hyper_parameters", {}).get("gpt", {}))
    if saved != gpt:
        diff = {k: (saved.get(k), gpt.get(k)) for k in sorted(set(saved) | set(gpt)) if saved.get(k) != gpt.get(k)}
        raise ValueError(f"{last} holds a run of another model (saved, requested): {diff}; choose another `out` to start afresh")


def train_world_model(c: TrainWorldModelConfig, callbacks: Sequence[Callback] = ()) -> TrainWorldModelResult:
    """Train (or resume, or start stage 2), then export the final weights; see the module docstring.
    `callbacks` are added to the Trainer's (tests use them to observe or interrupt a run)."""
    p = c.world_model
    out = Path(c.out)
    out.mkdir(parents=True, exist_ok=True)
    if c.trainer.threads is not None:
        torch.set_num_threads(c.trainer.threads)
    L.seed_everything(p.seed, workers=True, verbose=False)

    sources = parse_sources(c.tokens, c.sources)
    stores = {s.name: TokenStore(s.tokens) for s in sources}
    space = token_space(stores)
    windows = {s.name: source_windows(s, stores[s.name], p.n_frames, p.fps, p.val_clips, space.codebook_size) for s in sources}
    proportions = mixing_proportions(sources, windows)
    store_fps = sorted({f for w in windows.values() for f in w.store_fps})
    if p.fps is None and len(store_fps) > 1:
        raise ValueError(f"token sources have different frame rates {store_fps}: set world_model.fps to train at one rate")
    fps = float(p.fps) if p.fps is not None else (store_fps[0] if store_fps else None)
    gpt = p.gpt(space.codebook_size, space.grid_hw)
    optim = OptimConfig(schedule=p.wsd(), lr=p.lr, weight_decay=p.weight_decay, betas=p.betas)
    source_info = {
        s.name: {"tokens": str(Path(s.tokens).resolve()), "weight": s.weight, "proportion": proportions[s.name],
                 "train_windows": len(windows[s.name].train), "val_windows": len(windows[s.name].val), "clips": windows[s.name].num_clips}
        for s in sources
    }
    meta = WorldModelMeta(fps=fps, tokenizer=space.tokenizer, extra={"sources": source_info})

    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    resume = last if last.is_file() else None
    if resume is not None:
        _check_resumable(resume, asdict(gpt))
        log.info("resuming from %s", resume)
    init = InitFromCheckpoint(c.init_from) if c.init_from and resume is None else None
    if c.init_from and resume is not None:
        log.info("init_from=%s ignored: %s exists, so this run resumes", c.init_from, resume)

    module = GPTLightningModule(gpt, optim, compile_model=p.compile)
    mix = SourceMixCounter([s.name for s in sources])
    clock = _Clock()
    all_callbacks: list[Callback] = [*([init] if init else []), mix, clock, CheckpointMeta(meta.to_dict())]
    all_callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=-1, every_n_train_steps=p.checkpoint_every_n_steps))
    if c.progress_bar:
        all_callbacks.append(StepProgressBar())
    all_callbacks.extend(callbacks)
    t = c.trainer
    trainer = L.Trainer(
        max_steps=p.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=_strategy(t),
        precision=t.resolved_precision(torch.cuda.is_available() and t.accelerator in ("auto", "gpu", "cuda")),
        gradient_clip_val=p.grad_clip or None,
        logger=_loggers(c, out) or False,
        callbacks=all_callbacks,
        val_check_interval=min(p.val_every_n_steps, p.max_steps),
        check_val_every_n_epoch=None,
        log_every_n_steps=p.log_every_n_steps,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        enable_progress_bar=c.progress_bar,
        default_root_dir=str(out),
    )
    data = TokenDataModule(windows, proportions, p.batch_size, p.checkpoint_every_n_steps, p.val_windows, p.seed, p.num_workers)
    if not data.has_validation():
        trainer.limit_val_batches = 0
    trainer.fit(module, datamodule=data, ckpt_path=str(resume) if resume else None, weights_only=True)
    seconds = time.perf_counter() - clock.t0
    trainer.save_checkpoint(last, weights_only=False)  # the final state (with optimizer), also when max_steps is not a checkpoint multiple
    train_loss = trainer.callback_metrics.get("train/loss")
    val_metrics: dict[str, float] = {}
    if data.has_validation():
        (val_metrics,) = trainer.validate(module, datamodule=data, verbose=False, weights_only=True)
    summary: dict[str, Any] = {}
    if trainer.is_global_zero:
        start = trainer.global_step if clock.start_step is None else clock.start_step
        steps_run = trainer.global_step - start
        tokens_per_step = p.batch_size * trainer.world_size * gpt.max_tokens
        summary = {
            "steps": trainer.global_step,
            "steps_this_run": steps_run,
            "train_seconds": round(seconds, 2),
            "train_tokens_per_s": round(steps_run * tokens_per_step / max(seconds, 1e-9), 1),
            "world_size": trainer.world_size,
            "precision": str(trainer.precision),
            "num_params": module.model.num_params(),
            "fps": fps,
            "grid_hw": list(space.grid_hw),
            "codebook_size": space.codebook_size,
            "init_from": None if init is None else {"path": str(Path(c.init_from).resolve()), "step": init.loaded_global_step},
            "sources": source_info,
            "configured_mix": proportions,
            "realised_mix": mix.proportions(),
            "realised_counts": dict(mix.counts),
            "final_train_loss": None if train_loss is None else float(train_loss),
            "val": {k: float(v) for k, v in val_metrics.items()},
            "config": {k: v for k, v in c.raw.items() if k not in ("tokenizer", "planner")},  # other stages' profiles
        }
        meta = WorldModelMeta(fps=fps, tokenizer=space.tokenizer, extra={k: summary[k] for k in ("steps", "sources", "configured_mix", "realised_mix", "config")})
        # From the saved full-state checkpoint, so sharded (FSDP) and compiled runs export alike.
        summary["weights"] = str(export_world_model(load_gpt_from_checkpoint(last), out, meta))
        atomic_write_text(out / SUMMARY_NAME, json.dumps(summary, indent=1, default=str))
        log.info("world model: %d steps, realised mix %s, val %s", trainer.global_step, summary["realised_mix"], summary["val"])
    return TrainWorldModelResult(summary, module, None if init is None else init.loaded_global_step)
