"""`foresight train planner`: flow-matching training of the action model on a frozen world model.

    foresight train planner world_model=WM.ckpt tokenizer=TOK_DIR clips=CLIPS tokens=TOKENS out=OUT [experiment=tiny]

Inputs: a world-model checkpoint (`GPTLightningModule`, read with `load_gpt_from_checkpoint`), the
image tokenizer the token store was made with (checked by its weights' SHA-256), a clip store with
ego poses and the token store made from it. The action model's settings come from `planner.*`
(the experiment's planner profile).

Outputs in `out/`:
  checkpoints/last.ckpt (+ every `checkpoint_every_n_steps`): Lightning checkpoints; a rerun of the
      same command resumes from last.ckpt and continues bit-exactly (same batches, same noise);
  logs/version_*/metrics.csv: train/loss, train/lr, val/loss, val/min_ade, val/min_fde, val/l2_*s;
  plots/step_XXXXXX.png: sampled plans vs the logged trajectory (bird's-eye view) of fixed
      validation windows, every `plot_every_n_steps`;
  vam/: the exported action model (vam.safetensors + vam.json with the tokenizer's identity, frame
      period and inference settings), a copy of the tokenizer (tokenizer.safetensors + .json) so the
      directory alone is a closed-loop planner, and the ego-status-only MLP baseline (ego_mlp.*);
  train_summary.json: steps, time, parameter counts and open-loop validation metrics of the action
      model, the ego MLP and constant velocity on the same held-out windows.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, Subset

from data.command import Command
from data.store.manifest import atomic_write_text
from data.store.reader import ClipStore
from planner.action_model.checkpoint import export_vam
from planner.action_model.config import ActionModelConfig
from planner.action_model.lightning_module import FlowTrainingConfig, VAMLightningModule, VAMOptimConfig
from planner.action_model.sampling import sample_plans
from planner.datamodule import PlannerWindowDataset, PlannerWindowSpec, ResumableRandomSampler, split_clips
from planner.ego_mlp import EgoMLPConfig, export_ego_mlp, train_ego_mlp
from planner.open_loop import evaluate_windows
from planner.vam import VAMPlannerConfig
from world_model.artifact import load_world_model
from world_model.schedule import WSDSchedule
from world_model.tokens.reader import TokenStore

log = logging.getLogger(__name__)


def plain(cfg: Any) -> Any:
    """A DictConfig / mapping as plain Python containers (interpolations resolved)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def build(cls: type, values: Mapping[str, Any] | None, what: str) -> Any:
    """cls(**values) after checking for unknown keys (named with `what` in the error)."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown}; known keys are {sorted(known)}")
    return cls(**values)


@dataclass(frozen=True)
class TrainSettings:
    """`planner.train`: optimisation (AdamW + WSD schedule over max_steps), data and logging cadence.

    world_model_lr: None keeps the world model frozen, a number trains it at that peak LR.
    teacher_forcing: in imagine mode, the true next frames stand in for imagined ones.
    val_fraction: share of clips held out for validation; val_max_windows: evenly spaced subset used.
    turn_oversample: each window whose command is LEFT or RIGHT appears this many times per pass
    over the data (1: as recorded; turns are ~18% of synthetic windows).
    precision: Lightning precision, or auto (bf16-mixed on CUDA, 32-true on CPU).
    """

    batch_size: int = 16
    max_steps: int = 2000
    lr: float = 3e-4
    world_model_lr: float | None = None
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    decay_frac: float = 0.2
    final_frac: float = 0.1
    grad_clip: float = 1.0
    teacher_forcing: bool = True
    val_fraction: float = 0.1
    turn_oversample: int = 1
    val_max_windows: int = 256
    val_every_n_steps: int = 250
    plot_every_n_steps: int = 250
    plot_windows: int = 6
    checkpoint_every_n_steps: int = 250
    log_every_n_steps: int = 10
    precision: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_steps", "val_every_n_steps", "plot_every_n_steps", "checkpoint_every_n_steps", "log_every_n_steps", "turn_oversample"):
            if getattr(self, name) < 1:
                raise ValueError(f"planner.train.{name} must be >= 1, got {getattr(self, name)}")
        if self.plot_windows < 0 or self.val_max_windows < 1:
            raise ValueError(f"planner.train: plot_windows must be >= 0 and val_max_windows >= 1, got {self.plot_windows}, {self.val_max_windows}")


@dataclass(frozen=True)
class EgoMLPSettings:
    """`planner.ego_mlp`: the ego-status-only baseline trained after the action model."""

    hidden_width: int = 256
    n_layers: int = 2
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3


@dataclass(frozen=True)
class InferenceSettings:
    """`planner.inference`: what the exported planner runs in closed loop: ODE steps and solver,
    samples per call and how the executed plan is chosen from them (planner.vam.AGGREGATES)."""

    n_steps: int = 10
    solver: str = "euler"
    n_samples: int = 1
    aggregate: str = "first"

    def __post_init__(self) -> None:
        VAMPlannerConfig(n_steps=self.n_steps, solver=self.solver, n_samples=self.n_samples, aggregate=self.aggregate)  # validates


@dataclass(frozen=True)
class TrainPlannerConfig:
    """Everything `run_train_planner` reads (see the module docstring for the required paths)."""

    world_model: str
    tokenizer: str | None
    clips: str
    tokens: str
    out: str
    action_model: ActionModelConfig
    train: TrainSettings = field(default_factory=TrainSettings)
    flow: FlowTrainingConfig = field(default_factory=FlowTrainingConfig)
    ego_mlp: EgoMLPSettings = field(default_factory=EgoMLPSettings)
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    frame_period_s: float | None = None
    pad_start: bool = True
    init_from: str | None = None
    resume: bool = True
    accelerator: str = "auto"
    devices: Any = 1
    num_workers: int = 0

    def __post_init__(self) -> None:
        for name in ("world_model", "clips", "tokens", "out"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"train planner: `{name}` must be a path, got {getattr(self, name)!r} (e.g. `{name}=DIR`)")
        if self.action_model.uses_video and not isinstance(self.tokenizer, str):
            raise ValueError(f"train planner: video_mode={self.action_model.video_mode!r} needs `tokenizer=DIR` (the tokenizer of the token store), got {self.tokenizer!r}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "TrainPlannerConfig":
        """From the composed Hydra config: top-level paths and run settings, and the `planner` section."""
        d = dict(plain(cfg))
        section = dict(d.pop("planner", None) or {})
        for name in ("world_model", "tokenizer"):
            if isinstance(d.get(name), dict):
                # Still the experiment's profile section: the command line did not name a file.
                raise ValueError(f"train planner: `{name}=PATH` is required (the {name.replace('_', ' ')} to train on)")
        top = {k: d.pop(k) for k in ("world_model", "tokenizer", "clips", "tokens", "out", "init_from", "resume", "accelerator", "devices", "num_workers") if k in d}
        known_sections = {"action_model", "train", "flow", "ego_mlp", "inference", "frame_period_s", "pad_start"}
        unknown = sorted(set(section) - known_sections)
        if unknown:
            raise ValueError(f"planner: unknown keys {unknown}; known keys are {sorted(known_sections)}")
        flow = dict(section.get("flow") or {})
        return cls(
            **top,
            action_model=ActionModelConfig.from_dict(dict(section.get("action_model") or {})),
            train=build(TrainSettings, section.get("train"), "planner.train"),
            flow=FlowTrainingConfig.from_dict(flow),
            ego_mlp=build(EgoMLPSettings, section.get("ego_mlp"), "planner.ego_mlp"),
            inference=build(InferenceSettings, section.get("inference"), "planner.inference"),
            **{k: section[k] for k in ("frame_period_s", "pad_start") if k in section},
        )


def init_weights(module: VAMLightningModule, path: str) -> None:
    """Start from the weights of an exported planner (a vam directory) of the same architecture;
    normalisation constants may differ (e.g. to fine-tune with other ego-status scales)."""
    from planner.action_model.checkpoint import load_vam

    source = load_vam(path)
    if source.world_model_config != module.model.world_model_config:
        raise ValueError(f"init_from {path}: its world model {source.world_model_config} differs from {module.model.world_model_config}")
    try:
        module.model.load_state_dict(source.state_dict())
    except RuntimeError as exc:
        raise ValueError(f"init_from {path} does not fit the planner's architecture: {exc}") from exc
    log.info("initialised the planner from %s", path)


def resolve_precision(precision: str, accelerator: str) -> str:
    if precision != "auto":
        return precision
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if on_gpu else "32-true"


def checkpoint_step(path: Path) -> int:
    """The optimiser step stored in a Lightning checkpoint (0 when it has none)."""
    return int(torch.load(path, map_location="cpu", weights_only=True).get("global_step", 0))


def window_spec(action: ActionModelConfig, n_observed_frames: int, c: TrainPlannerConfig) -> PlannerWindowSpec:
    teacher = action.video_mode == "imagine" and c.train.teacher_forcing
    return PlannerWindowSpec(
        n_observed_frames=n_observed_frames,
        n_future_frames=action.n_imagined_frames if teacher else 0,
        frame_period_s=c.frame_period_s,
        num_waypoints=action.num_waypoints,
        waypoint_dt_s=action.waypoint_dt_s,
        history_steps=action.ego_history_steps,
        history_dt_s=action.ego_history_dt_s,
        pad_start=c.pad_start,
    )


def evenly_spaced_subset(dataset, n: int) -> Subset:
    """At most n items spread evenly over the dataset (deterministic)."""
    idx = np.unique(np.linspace(0, len(dataset) - 1, num=min(n, len(dataset))).round().astype(int))
    return Subset(dataset, idx.tolist())


def plot_trajectories(samples_xy: np.ndarray, truth_xy: np.ndarray, valid: np.ndarray, path: Path, title: str = "") -> Path:
    """Bird's-eye PNG, one panel per window: sampled plans (thin; sample 0 thick) vs the logged
    future (black), x forward pointing up, y left pointing left. samples (B, S, K, 2), truth (B, K, 2) [m]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(samples_xy)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows), squeeze=False)
    for b, ax in enumerate(axes.flat):
        if b >= n:
            ax.axis("off")
            continue
        for s, plan in enumerate(samples_xy[b]):
            ax.plot(-plan[:, 1], plan[:, 0], "-", color="tab:blue" if s else "tab:red", lw=2.0 if s == 0 else 0.7, alpha=1.0 if s == 0 else 0.5)
        good = valid[b]
        ax.plot(-truth_xy[b, good, 1], truth_xy[b, good, 0], "k.-", lw=1.5, label="logged")
        ax.plot([0], [0], "ks", ms=5)
        reach = max(5.0, float(np.abs(np.concatenate([samples_xy[b].reshape(-1, 2), truth_xy[b][good]])).max()) * 1.1)
        ax.set_xlim(-reach, reach)
        ax.set_ylim(-0.2 * reach, reach)
        ax.set_aspect("equal")
        ax.set_xlabel("-y (right) [m]")
        ax.set_ylabel("x (forward) [m]")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


class TrajectoryPlotCallback(Callback):
    """Every `every_n_steps` optimiser steps (and after the last one): sampled plans of fixed windows
    vs their logged futures, written to `directory/step_XXXXXX.png` (noise from a fixed seed)."""

    def __init__(self, batch: dict[str, torch.Tensor], every_n_steps: int, directory: Path, n_samples: int, n_steps: int, seed: int) -> None:
        self.batch, self.every, self.directory = batch, every_n_steps, directory
        self.n_samples, self.n_steps, self.seed = n_samples, n_steps, seed

    def plot(self, module: VAMLightningModule, step: int) -> Path:
        was_training = module.training
        module.eval()
        try:
            batch = {k: v.to(module.device) for k, v in self.batch.items()}
            samples = sample_plans(module.model, batch, self.n_samples, self.n_steps, "euler", torch.Generator().manual_seed(self.seed))
        finally:
            module.train(was_training)
        return plot_trajectories(samples.float().cpu().numpy(), self.batch["trajectory"][..., :2].numpy(), self.batch["trajectory_valid"].numpy(),
                                 self.directory / f"step_{step:06d}.png", title=f"step {step}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if trainer.is_global_zero and (step % self.every == 0 or step == trainer.max_steps):
            self.plot(pl_module, step)


class _Clock(Callback):
    def __init__(self) -> None:
        self.start_step: int | None = None
        self.t0 = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_step, self.t0 = trainer.global_step, time.perf_counter()


def _tokenizer_files(path: str) -> list[Path]:
    """The files of a Foresight tokenizer export at `path` (dir, .safetensors or .json); [] for other formats."""
    p = Path(path)
    if p.suffix in (".pt", ".pth"):
        return []
    weights = (p / "tokenizer.safetensors") if p.suffix not in (".safetensors", ".json") else p.with_suffix(".safetensors")
    return [weights, weights.with_suffix(".json")]


def export_planner(module: VAMLightningModule, c: TrainPlannerConfig, tokenizer_identity: dict[str, Any] | None, vam_dir: Path, extra: dict[str, Any]) -> Path:
    """Export the action model to vam_dir with everything the closed-loop planner needs, and copy the
    tokenizer beside it (a LlamaGen .pt is referenced by absolute path instead)."""
    vam_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_ref: str | None = None
    if c.tokenizer is not None:
        files = _tokenizer_files(c.tokenizer)
        if files and all(f.is_file() for f in files):
            for f in files:
                shutil.copyfile(f, vam_dir / f"tokenizer{f.suffix}")
            tokenizer_ref = "tokenizer.safetensors"  # relative to vam_dir
        else:
            tokenizer_ref = str(Path(c.tokenizer).resolve())
    meta_extra = {
        **extra,
        "tokenizer_path": tokenizer_ref,
        "frame_period_s": c.frame_period_s,
        "inference": asdict(c.inference),
    }
    return export_vam(module.model.cpu(), vam_dir, tokenizer=tokenizer_identity, extra=meta_extra)


def run_train_planner(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Train, export and evaluate (see the module docstring); returns train_summary.json's content."""
    c = TrainPlannerConfig.from_config(cfg)
    out = Path(c.out)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(c.train.seed, workers=True, verbose=False)
    action = c.action_model

    loaded_wm = load_world_model(c.world_model)
    gpt = loaded_wm.model
    wm_fps = loaded_wm.meta.fps
    if c.frame_period_s is None:  # the world model's own frame spacing (0.5 s when it does not say)
        c = replace(c, frame_period_s=1.0 / wm_fps if wm_fps else 0.5)
    elif wm_fps is not None and abs(wm_fps * c.frame_period_s - 1.0) > 1e-6:
        log.warning("world model %s was trained at %g fps but the planner observes frames every %g s (planner.frame_period_s): "
                    "it will see its frames at another spacing", c.world_model, wm_fps, c.frame_period_s)
    tokens = TokenStore(c.tokens)
    clips = ClipStore(c.clips)
    tokenizer_identity = None
    if c.tokenizer is not None:
        from world_model.tokenizer import load_image_tokenizer

        tokenizer_identity = load_image_tokenizer(c.tokenizer).identity
        for what, recorded in ((f"token store {c.tokens}", (tokens.tokenizer or {}).get("weights_sha256")),
                               (f"world model {c.world_model}", loaded_wm.meta.tokenizer_sha256)):
            if recorded is not None and recorded != tokenizer_identity.get("weights_sha256"):
                raise ValueError(f"{what} was made with another tokenizer than {c.tokenizer} (weights SHA-256 differs)")
    wm = gpt.config
    if action.uses_video and (tuple(tokens.grid_hw) != (wm.tokens_h, wm.tokens_w) or tokens.codebook_size > wm.vocab_size):
        raise ValueError(f"world model {c.world_model} expects {wm.tokens_h}x{wm.tokens_w} tokens from {wm.vocab_size} codes; "
                         f"token store {c.tokens} holds {tuple(tokens.grid_hw)} tokens from {tokens.codebook_size} codes")

    n_observed = action.observed_frame_count(wm.max_frames)
    spec = window_spec(action, n_observed, c)
    train_clips, val_clips = split_clips(len(tokens), c.train.val_fraction, c.train.seed)
    train_ds = PlannerWindowDataset(clips, tokens, spec, train_clips)
    val_ds = evenly_spaced_subset(PlannerWindowDataset(clips, tokens, spec, val_clips), c.train.val_max_windows) if val_clips else None

    t = c.train
    optim = VAMOptimConfig(
        schedule=WSDSchedule(total_steps=t.max_steps, warmup_frac=t.warmup_frac, decay_frac=t.decay_frac, final_frac=t.final_frac),
        lr=t.lr, world_model_lr=t.world_model_lr, weight_decay=t.weight_decay,
    )
    module = VAMLightningModule(wm, action, optim, c.flow)
    if module.model.world_model is not None:
        module.load_world_model(gpt)
    if c.init_from:
        init_weights(module, c.init_from)

    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    resume_from = last if c.resume and last.is_file() else None
    start_step = checkpoint_step(resume_from) if resume_from else 0
    if resume_from:
        log.info("resuming planner training from %s (step %d)", resume_from, start_step)
    repeats = np.where(train_ds.commands != int(Command.STRAIGHT), t.turn_oversample, 1) if t.turn_oversample > 1 else None
    sampler = ResumableRandomSampler(len(train_ds), t.batch_size, t.max_steps, t.seed, start_batch=min(start_step, t.max_steps), repeats=repeats)
    train_dl = DataLoader(train_ds, batch_size=t.batch_size, sampler=sampler, drop_last=False, num_workers=c.num_workers,
                          persistent_workers=c.num_workers > 0)
    val_dl = DataLoader(val_ds, batch_size=t.batch_size, shuffle=False, num_workers=0) if val_ds is not None and len(val_ds) else None

    plot_source = val_ds if val_ds is not None and len(val_ds) else train_ds
    callbacks: list[Callback] = [
        clock := _Clock(),
        ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=-1, every_n_train_steps=t.checkpoint_every_n_steps),
    ]
    if t.plot_windows:
        plot_batch = next(iter(DataLoader(evenly_spaced_subset(plot_source, t.plot_windows), batch_size=t.plot_windows)))
        callbacks.append(TrajectoryPlotCallback(plot_batch, t.plot_every_n_steps, out / "plots", min(c.flow.eval_samples, 10), c.flow.eval_steps, t.seed))
    trainer = L.Trainer(
        max_steps=t.max_steps,
        accelerator=c.accelerator,
        devices=c.devices,
        precision=resolve_precision(t.precision, c.accelerator),
        gradient_clip_val=t.grad_clip or None,
        logger=CSVLogger(str(out), name="logs"),
        callbacks=callbacks,
        val_check_interval=min(t.val_every_n_steps, t.max_steps) if val_dl is not None else None,
        check_val_every_n_epoch=None,
        limit_val_batches=None if val_dl is not None else 0,
        log_every_n_steps=t.log_every_n_steps,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    trainer.fit(module, train_dl, val_dl, ckpt_path=str(resume_from) if resume_from else None, weights_only=True)
    seconds = time.perf_counter() - clock.t0
    if not trainer.is_global_zero:
        return {}

    module = module.cpu().eval()
    ego_settings = c.ego_mlp
    ego_config = EgoMLPConfig(features=replace(action, video_mode="none", n_imagined_frames=0, ego_status="add" if action.ego_status == "off" else action.ego_status),
                              hidden_width=ego_settings.hidden_width, n_layers=ego_settings.n_layers)
    ego_mlp = train_ego_mlp(train_ds, ego_config, ego_settings.steps, ego_settings.batch_size, ego_settings.lr, t.seed)

    steps_run = trainer.global_step - (trainer.global_step if clock.start_step is None else clock.start_step)
    summary: dict[str, Any] = {
        "steps": trainer.global_step,
        "steps_this_run": steps_run,
        "train_seconds": round(seconds, 2),
        "train_windows_per_s": round(steps_run * t.batch_size / max(seconds, 1e-9), 2),
        "train_windows": len(train_ds),
        "val_windows": 0 if val_ds is None else len(val_ds),
        "train_windows_skipped_perturbed": train_ds.skipped_perturbed,
        "expert_params": module.model.expert.num_params(),
        "world_model_params": 0 if module.model.world_model is None else module.model.world_model.num_params(),
        "world_model_frozen": module.world_model_frozen,
        "video_mode": action.video_mode,
    }
    if val_ds is not None and len(val_ds):
        summary["val_open_loop"] = evaluate_windows(module.model, ego_mlp, val_ds, c.flow.eval_samples, c.flow.eval_steps, c.flow.eval_solver,
                                                    seed=t.seed, aggregate=c.inference.aggregate)
    vam_dir = out / "vam"
    export_planner(module, c, tokenizer_identity, vam_dir, extra={
        "steps": trainer.global_step, "world_model_checkpoint": str(loaded_wm.path), "world_model_fps": loaded_wm.meta.fps,
        "val_open_loop": summary.get("val_open_loop"), "planner_profile": plain(cfg).get("planner"),
    })
    export_ego_mlp(ego_mlp, vam_dir, extra={"steps": ego_settings.steps, "trained_on": str(Path(c.tokens).resolve())})
    summary["vam"] = str(vam_dir)
    atomic_write_text(out / "train_summary.json", json.dumps(summary, indent=1))
    log.info("planner: %s", json.dumps(summary.get("val_open_loop")))
    return summary
