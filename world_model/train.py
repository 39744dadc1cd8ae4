"""`foresight train world_model`: the GPT world model on one or more token stores, trained through
the one loop of every stage (`foresight.training.train_stage`; the `trainer` config group).

Outputs in `out/`:
  checkpoints/last.ckpt (+ step-N checkpoints every `checkpoint_every_n_steps`): rerunning the same
    command resumes from the newest intact one and continues the same loss curve (model, optimizer,
    schedule, data order, RNG and the source-mix counts are restored); a rerun with another config
    is refused unless trainer.overwrite=true; checkpoints/final.ckpt: the state at the end;
  run_config.json: the run's config (what a rerun is checked against);
  world_model.safetensors + world_model.json: the final weights with the GPT config, the frame
    rate and the tokenizer identity (`world_model.artifact.load_world_model` reads them; so does
    it the .ckpt files);
  logs/ (CSV metrics: train/loss, train/lr, mix/<source>, val/loss[/<source>], the trainer.monitors;
    tensorboard/ and wandb/ with trainer.loggers) and
  train_summary.json (steps, speed, configured vs realised source mix, final losses).

Stage 2 (`init_from=<stage-1 checkpoint>`) starts from stage 1's weights and optimizer state and runs
its own schedule (for the recipe: only the WSD decay phase) on its own source mix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from foresight.training import FitResult, TrainingStage, prepare_run, train_stage
from world_model.artifact import WEIGHTS_NAME, WorldModelMeta, export_world_model
from world_model.datamodule import TokenDataModule
from world_model.gpt.lightning_module import GPTLightningModule, load_gpt_from_checkpoint
from world_model.gpt.model import Block
from world_model.optim import OptimConfig
from world_model.token_sources import mixing_proportions, parse_sources, source_windows, token_space
from world_model.tokens.reader import TokenStore
from world_model.train_callbacks import CheckpointMeta, InitFromCheckpoint, SourceMixCounter
from world_model.train_config import TrainWorldModelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainWorldModelResult:
    """summary: train_summary.json's content (empty on ranks other than 0); module: the trained
    Lightning module on this rank; init_step: the stage-1 step stage 2 started from (else None)."""

    summary: dict[str, Any]
    module: GPTLightningModule
    init_step: int | None


def train_world_model(c: TrainWorldModelConfig, callbacks: Sequence[Callback] = ()) -> TrainWorldModelResult:
    """Train (or resume, or start stage 2), then export the final weights; see the module docstring.
    `callbacks` are added to the Trainer's (tests use them to observe or interrupt a run)."""
    p = c.world_model
    out = Path(c.out)
    stage = TrainingStage(
        name="world model", out=out, max_steps=p.max_steps, val_every_n_steps=p.val_every_n_steps,
        checkpoint_every_n_steps=p.checkpoint_every_n_steps, log_every_n_steps=p.log_every_n_steps, grad_clip=p.grad_clip,
        architecture=("gpt",), fsdp_units=(Block,), config={k: v for k, v in c.raw.items() if k not in ("tokenizer", "planner")},
        max_steps_key="world_model.max_steps", exports=(WEIGHTS_NAME, str(Path(WEIGHTS_NAME).with_suffix(".json"))),
        batch_size=p.batch_size,
    )
    resume = prepare_run(stage, c.trainer, p.seed)

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
    stage = replace(stage, tokens_per_sample=gpt.max_tokens)  # known once the token stores are read
    optim = OptimConfig(schedule=p.wsd(), lr=p.lr, weight_decay=p.weight_decay, betas=p.betas, eps=p.eps)
    source_info = {
        s.name: {"tokens": str(Path(s.tokens).resolve()), "weight": s.weight, "proportion": proportions[s.name],
                 "train_windows": len(windows[s.name].train), "val_windows": len(windows[s.name].val), "clips": windows[s.name].num_clips,
                 "clips_with_poses": windows[s.name].clips_with_poses}
        for s in sources
    }
    meta = WorldModelMeta(fps=fps, tokenizer=space.tokenizer, extra={"sources": source_info})

    init = InitFromCheckpoint(c.init_from) if c.init_from and resume.checkpoint is None else None
    if c.init_from and resume.checkpoint is not None:
        log.info("init_from=%s ignored: %s exists, so this run resumes", c.init_from, resume.checkpoint)
    module = GPTLightningModule(gpt, optim, compile_model=p.compile, ego_motion_dropout=p.ego_motion_dropout, seed=p.seed)
    mix = SourceMixCounter([s.name for s in sources])
    data = TokenDataModule(windows, proportions, p.batch_size, p.checkpoint_every_n_steps, p.val_windows, p.seed, p.num_workers)

    def export(result: FitResult) -> dict[str, Any]:
        val_metrics: dict[str, float] = {}
        if data.has_validation():  # on every rank: validation is a collective under DDP
            (val_metrics,) = result.trainer.validate(result.module, datamodule=data, verbose=False, weights_only=True)
        if not result.is_global_zero:
            return {}
        train_loss = result.trainer.callback_metrics.get("train/loss")
        fields = {
            "train_tokens_per_s": round(result.samples_per_second(p.batch_size) * gpt.max_tokens, 1),
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
        extra = {"steps": result.trainer.global_step, **{k: fields[k] for k in ("sources", "configured_mix", "realised_mix", "config")}}
        # From the saved full-state checkpoint, so sharded (FSDP) and compiled runs export alike.
        fields["weights"] = str(export_world_model(load_gpt_from_checkpoint(result.final_checkpoint), out, WorldModelMeta(fps, space.tokenizer, extra)))
        log.info("world model: %d steps, realised mix %s, val %s", result.trainer.global_step, fields["realised_mix"], fields["val"])
        return fields

    stage_callbacks = [*([init] if init else []), mix, CheckpointMeta(meta.to_dict()), *callbacks]
    summary = train_stage(stage, module, c.trainer, export, resume, datamodule=data, callbacks=stage_callbacks)
    return TrainWorldModelResult(summary, module, None if init is None else init.loaded_global_step)
