"""`foresight train planner`: flow-matching training of the action model on a frozen world model.

    foresight train planner world_model=WM.ckpt tokenizer=TOK_DIR clips=CLIPS tokens=TOKENS out=OUT [experiment=tiny]

Inputs: a world-model checkpoint (`GPTLightningModule`, read with `load_gpt_from_checkpoint`), the
image tokenizer the token store was made with (checked by its weights' SHA-256), a clip store with
ego poses and the token store made from it. The action model's settings come from `planner.*`
(the experiment's planner profile).

Training runs through the one loop of every stage (`foresight.training.train_stage`, the `trainer`
config group: devices, strategy, precision, loggers, checkpoints, resume, progress bar).

Outputs in `out/`:
  checkpoints/last.ckpt (+ every `checkpoint_every_n_steps`): Lightning checkpoints; a rerun of the
      same command resumes from the newest intact one and continues bit-exactly (same batches, same
      noise); a rerun with another config is refused unless trainer.overwrite=true;
  run_config.json: the run's config (what a rerun is checked against);
  logs/version_*/metrics.csv: train/loss, train/lr, val/loss, val/min_ade, val/min_fde, val/l2_*s and the
      trainer.monitors (tensorboard/ and wandb/ with trainer.loggers);
  plots/step_XXXXXX.png: sampled plans vs the logged trajectory (bird's-eye view) of fixed
      validation windows, every `plot_every_n_steps`;
  vam/: the exported action model (with trainer.ema_decay: its moving average; vam.safetensors + vam.json with the tokenizer's identity, frame
      period and inference settings), a copy of the tokenizer (tokenizer.safetensors + .json) so the
      directory alone is a closed-loop planner, and the ego-status-only MLP baseline (ego_mlp.*);
  train_summary.json: steps, time, parameter counts and open-loop validation metrics of the action
      model, the ego MLP and constant velocity on the same held-out windows.

With dagger.rounds=N (foresight/dagger.py), N DAgger rounds follow: each rolls the current planner
through training scenarios, labels every visited state with the privileged expert's plan and
fine-tunes on the original and all DAgger data; OUT/dagger/round_RR/ holds each round's work,
OUT/dagger/rounds.json the closed-loop score per round, OUT/dagger/round_NN/train/vam the final
planner. `dagger_data` (round directories) adds DAgger windows to a run's training set.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import ConcatDataset, Subset

from configs import build, plain
from data.command import Command
from data.store.reader import ClipStore
from data.store.weights_file import WeightsPaths
from foresight.dagger_config import DaggerRoundDir, DaggerSettings
from foresight.training import FitResult, ResumableData, TrainerSettings, TrainingStage, prepare_run, train_stage
from planner.action_model.checkpoint import export_vam
from planner.action_model.config import ActionModelConfig
from planner.action_model.lightning_module import FlowTrainingConfig, VAMLightningModule, VAMOptimConfig
from planner.action_model.sampling import sample_plans
from planner.batch import PlannerBatch, planner_loader
from planner.datamodule import PlannerWindowDataset, PlannerWindowSpec, split_clips
from planner.ego_mlp import EgoMLPConfig, export_ego_mlp, train_ego_mlp
from planner.inference import InferenceSettings
from planner.open_loop import evaluate_windows
from world_model.artifact import load_world_model
from world_model.schedule import WSDSchedule
from world_model.tokenizer.export import WEIGHTS_NAME as TOKENIZER_WEIGHTS_NAME
from world_model.tokens.reader import TokenStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """`planner.train`: optimisation (AdamW with betas / eps, warmup-stable-decay over max_steps),
    data and logging cadence.

    world_model_lr: None keeps the world model frozen, a number trains it at that peak LR.
    teacher_forcing: in imagine mode, the true next frames stand in for imagined ones.
    val_fraction: share of clips held out for validation; val_max_windows: evenly spaced subset used.
    turn_oversample: each window whose command is LEFT or RIGHT appears this many times per pass
    over the data (1: as recorded; turns are ~18% of synthetic windows).
    suite_oversample: {suite: n}: windows of clips recorded in that scenario suite (provenance
    `suite` of synthetic clips and DAgger rollouts) appear n times per pass (multiplies
    turn_oversample); unlisted suites once.
    maneuver_oversample: {maneuver: n}: the same by the clip's scenario maneuver (provenance
    `maneuver`: follow, stop_and_go, lead_brake, ...; multiplies both); unlisted maneuvers once.
    num_workers: DataLoader worker processes.
    """

    batch_size: int
    max_steps: int
    lr: float
    world_model_lr: float | None
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    warmup_frac: float
    decay_frac: float
    final_frac: float
    decay_shape: str
    grad_clip: float
    teacher_forcing: bool
    val_fraction: float
    turn_oversample: int
    suite_oversample: dict[str, int]
    maneuver_oversample: dict[str, int]
    val_max_windows: int
    val_every_n_steps: int
    plot_every_n_steps: int
    plot_windows: int
    checkpoint_every_n_steps: int
    log_every_n_steps: int
    num_workers: int
    seed: int

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_steps", "val_every_n_steps", "plot_every_n_steps", "checkpoint_every_n_steps", "log_every_n_steps", "turn_oversample"):
            if getattr(self, name) < 1:
                raise ValueError(f"planner.train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("suite_oversample", "maneuver_oversample"):
            bad = {k: v for k, v in dict(getattr(self, name)).items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
            if bad:
                raise ValueError(f"planner.train.{name}: repeats must be integers >= 1, got {bad}")
        if self.plot_windows < 0 or self.val_max_windows < 1 or self.num_workers < 0:
            raise ValueError(f"planner.train: plot_windows and num_workers must be >= 0 and val_max_windows >= 1, got {self}")

    def optim(self) -> VAMOptimConfig:
        schedule = WSDSchedule(total_steps=self.max_steps, warmup_frac=self.warmup_frac, decay_frac=self.decay_frac,
                               final_frac=self.final_frac, decay_shape=self.decay_shape)
        return VAMOptimConfig(schedule=schedule, lr=self.lr, world_model_lr=self.world_model_lr, weight_decay=self.weight_decay,
                              betas=self.betas, eps=self.eps)


@dataclass(frozen=True)
class EgoMLPSettings:
    """`planner.ego_mlp`: the ego-status-only baseline trained after the action model."""

    hidden_width: int
    n_layers: int
    steps: int
    batch_size: int
    lr: float


@dataclass(frozen=True)
class PlannerProfile:
    """The `planner` section (configs/planner_profile/): the action model, its training, the flow
    objective, the ego-MLP baseline, the exported inference settings; frame_period_s: spacing of the
    observed frames [s] (None: the world model's, 1 / its fps, 0.5 s when it does not say);
    pad_start: train on windows at clip start too, oldest frame repeated (as in closed loop)."""

    action_model: ActionModelConfig
    train: TrainSettings
    flow: FlowTrainingConfig
    ego_mlp: EgoMLPSettings
    inference: InferenceSettings
    frame_period_s: float | None
    pad_start: bool


@dataclass(frozen=True)
class TrainPlannerConfig:
    """Everything `run_train_planner` reads (see the module docstring for the required paths)."""

    world_model: str
    tokenizer: str | None
    clips: str
    tokens: str
    out: str
    init_from: str | None
    planner: PlannerProfile
    trainer: TrainerSettings
    dagger: DaggerSettings
    dagger_data: tuple[str, ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("world_model", "clips", "tokens", "out"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"train planner: `{name}` must be a path, got {getattr(self, name)!r} (e.g. `{name}=DIR`)")
        if self.planner.action_model.uses_video and not isinstance(self.tokenizer, str):
            raise ValueError(f"train planner: video_mode={self.planner.action_model.video_mode!r} needs `tokenizer=DIR` "
                             f"(the tokenizer of the token store), got {self.tokenizer!r}")
        if self.dagger.rounds and not isinstance(self.tokenizer, str):
            raise ValueError("train planner: dagger.rounds needs `tokenizer=DIR` (the rollouts' frames are tokenized with it)")
        for d in self.dagger_data:
            if not isinstance(d, str) or not (Path(d) / "clips").is_dir() or not (Path(d) / "tokens").is_dir():
                raise ValueError(f"train planner: dagger_data entry {d!r} is not a DAgger round directory (with clips/ and tokens/)")

    @classmethod
    def from_config(cls, cfg: Any) -> "TrainPlannerConfig":
        """From the composed Hydra config (configs/train/planner.yaml): the paths, the `planner`
        section and the `trainer` group."""
        d = dict(plain(cfg))
        for name in ("world_model", "tokenizer"):
            if isinstance(d.get(name), dict):
                # Still the experiment's profile section: the command line did not name a file.
                raise ValueError(f"train planner: `{name}=PATH` is required (the {name.replace('_', ' ')} to train on)")
        return build(cls, {**d, "raw": d}, "train planner")


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


def window_spec(action: ActionModelConfig, n_observed_frames: int, p: PlannerProfile, frame_period_s: float) -> PlannerWindowSpec:
    teacher = action.video_mode == "imagine" and p.train.teacher_forcing
    return PlannerWindowSpec(
        n_observed_frames=n_observed_frames,
        n_future_frames=action.n_imagined_frames if teacher else 0,
        frame_period_s=frame_period_s,
        num_waypoints=action.num_waypoints,
        waypoint_dt_s=action.waypoint_dt_s,
        history_steps=action.ego_history_steps,
        history_dt_s=action.ego_history_dt_s,
        pad_start=p.pad_start,
        route_path=action.uses_route,
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

    def __init__(self, batch: PlannerBatch, every_n_steps: int, directory: Path, n_samples: int, n_steps: int, seed: int) -> None:
        self.batch, self.every, self.directory = batch, every_n_steps, directory
        self.n_samples, self.n_steps, self.seed = n_samples, n_steps, seed
        self._plotted_step = -1

    def plot(self, module: VAMLightningModule, step: int) -> Path:
        was_training = module.training
        module.eval()
        try:
            samples = sample_plans(module.model, self.batch.to(module.device), self.n_samples, self.n_steps, "euler", torch.Generator().manual_seed(self.seed))
        finally:
            module.train(was_training)
        return plot_trajectories(samples.float().cpu().numpy(), self.batch.trajectory[..., :2].numpy(), self.batch.trajectory_valid.numpy(),
                                 self.directory / f"step_{step:06d}.png", title=f"step {step}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == self._plotted_step:  # an accumulated batch that made no optimizer step
            return
        if trainer.is_global_zero and (step % self.every == 0 or step == trainer.max_steps):
            self.plot(pl_module, step)
            self._plotted_step = step


def _tokenizer_files(path: str) -> list[Path]:
    """The files of a Foresight tokenizer export at `path` (dir, .safetensors or .json); [] for other formats (LlamaGen .pt)."""
    if Path(path).suffix in (".pt", ".pth"):
        return []
    files = WeightsPaths.at(path, TOKENIZER_WEIGHTS_NAME)
    return [files.weights, files.config]


def export_planner(module: VAMLightningModule, c: TrainPlannerConfig, frame_period_s: float, tokenizer_identity: dict[str, Any] | None,
                   vam_dir: Path, extra: dict[str, Any]) -> Path:
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
    return export_vam(module.model.cpu(), vam_dir, frame_period_s, c.planner.inference, tokenizer_identity, tokenizer_ref, extra)


def run_train_planner(cfg: Mapping[str, Any], callbacks: list[Callback] | None = None) -> dict[str, Any]:
    """Train, export and evaluate (see the module docstring); returns train_summary.json's content.
    `callbacks` are added to the loop's (tests use them to observe or interrupt a run)."""
    c = TrainPlannerConfig.from_config(cfg)
    p, t = c.planner, c.planner.train
    out = Path(c.out)
    stage = TrainingStage(
        name="planner", out=out, max_steps=t.max_steps, val_every_n_steps=t.val_every_n_steps, checkpoint_every_n_steps=t.checkpoint_every_n_steps,
        log_every_n_steps=t.log_every_n_steps, grad_clip=t.grad_clip, architecture=("world_model", "action_model"), fsdp_units=(),
        # The DAgger settings do not change this run (rounds are runs of their own): adding rounds resumes it.
        config={k: v for k, v in c.raw.items() if k != "dagger"}, max_steps_key="planner.train.max_steps", exports=("vam", "plots"), batch_size=t.batch_size,
    )
    start = prepare_run(stage, c.trainer, t.seed)
    action = p.action_model

    loaded_wm = load_world_model(c.world_model)
    gpt = loaded_wm.model
    wm_fps = loaded_wm.meta.fps
    frame_period_s = p.frame_period_s
    if frame_period_s is None:  # the world model's own frame spacing (0.5 s when it does not say)
        frame_period_s = 1.0 / wm_fps if wm_fps else 0.5
    elif wm_fps is not None and abs(wm_fps * frame_period_s - 1.0) > 1e-6:
        log.warning("world model %s was trained at %g fps but the planner observes frames every %g s (planner.frame_period_s): "
                    "it will see its frames at another spacing", c.world_model, wm_fps, frame_period_s)
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

    spec = window_spec(action, action.observed_frame_count(wm.max_frames), p, frame_period_s)
    train_clips, val_clips = split_clips(len(tokens), t.val_fraction, t.seed)
    train_ds = PlannerWindowDataset(clips, tokens, spec, train_clips)
    dagger_sets = [dagger_windows(DaggerRoundDir(Path(d)), spec, tokenizer_identity, tokens) for d in c.dagger_data]
    train_set = ConcatDataset([train_ds, *dagger_sets]) if dagger_sets else train_ds  # validation: original clips only
    window_sets = [train_ds, *dagger_sets]
    train_commands = np.concatenate([d.commands for d in window_sets])
    val_ds = evenly_spaced_subset(PlannerWindowDataset(clips, tokens, spec, val_clips), t.val_max_windows) if val_clips else None
    has_val = val_ds is not None and len(val_ds) > 0

    module = VAMLightningModule(wm, action, t.optim(), p.flow)
    if module.model.world_model is not None:
        module.load_world_model(gpt)
    if c.init_from:
        init_weights(module, c.init_from)

    repeats = window_repeats(train_commands, np.concatenate([d.suites for d in window_sets]),
                             np.concatenate([d.maneuvers for d in window_sets]), t)
    data = ResumableData(train_set, t.batch_size, t.max_steps, t.checkpoint_every_n_steps, t.seed, val=val_ds if has_val else None,
                         repeats=repeats, collate_fn=PlannerBatch.collate, num_workers=t.num_workers)
    stage_callbacks: list[Callback] = []
    if t.plot_windows:
        plot_batch = next(iter(planner_loader(evenly_spaced_subset(val_ds if has_val else train_ds, t.plot_windows), t.plot_windows)))
        stage_callbacks.append(TrajectoryPlotCallback(plot_batch, t.plot_every_n_steps, out / "plots", min(p.flow.eval_samples, 10), p.flow.eval_steps, t.seed))

    def export(result: FitResult) -> dict[str, Any]:
        if not result.is_global_zero:
            return {}
        trained = result.module.cpu().eval()
        ego_settings = p.ego_mlp
        ego_config = EgoMLPConfig(features=replace(action, video_mode="none", n_imagined_frames=0, ego_status="add" if action.ego_status == "off" else action.ego_status),
                                  hidden_width=ego_settings.hidden_width, n_layers=ego_settings.n_layers)
        ego_mlp = train_ego_mlp(train_set, ego_config, ego_settings.steps, ego_settings.batch_size, ego_settings.lr, t.seed)
        fields: dict[str, Any] = {
            "train_windows_per_s": round(result.samples_per_second(t.batch_size), 2),
            "train_windows": len(train_set),
            "dagger_windows": [len(d) for d in dagger_sets],
            "val_windows": len(val_ds) if has_val else 0,
            "train_windows_skipped_perturbed": train_ds.skipped_perturbed,
            "expert_params": trained.model.expert.num_params(),
            "world_model_params": 0 if trained.model.world_model is None else trained.model.world_model.num_params(),
            "world_model_frozen": trained.world_model_frozen,
            "video_mode": action.video_mode,
        }
        if has_val:
            f = p.flow
            fields["val_open_loop"] = evaluate_windows(trained.model, ego_mlp, val_ds, f.eval_samples, f.eval_steps, f.eval_solver,
                                                       seed=t.seed, aggregate=p.inference.aggregate)
        vam_dir = out / "vam"
        export_planner(trained, c, frame_period_s, tokenizer_identity, vam_dir, extra={
            "steps": result.trainer.global_step, "world_model_checkpoint": str(loaded_wm.path), "world_model_fps": loaded_wm.meta.fps,
            "val_open_loop": fields.get("val_open_loop"), "planner_profile": c.raw.get("planner"),
        })
        export_ego_mlp(ego_mlp, vam_dir, extra={"steps": ego_settings.steps, "trained_on": str(Path(c.tokens).resolve())})
        fields["vam"] = str(vam_dir)
        log.info("planner: %s", fields.get("val_open_loop"))
        return fields

    summary = train_stage(stage, module, c.trainer, export, start, datamodule=data, callbacks=[*stage_callbacks, *(callbacks or [])])
    if c.dagger.rounds and summary:
        from foresight.dagger import run_dagger_rounds

        summary["dagger"] = run_dagger_rounds(c, out / "vam", callbacks)
    return summary


def window_repeats(commands: np.ndarray, suites: np.ndarray, maneuvers: np.ndarray, t: TrainSettings) -> np.ndarray | None:
    """(N,) int how often each training window appears per pass: turn_oversample for LEFT / RIGHT
    windows times suite_oversample[suite] times maneuver_oversample[maneuver] (None: every window once)."""
    repeats = np.where(commands != int(Command.STRAIGHT), t.turn_oversample, 1)
    for weights, keys in ((t.suite_oversample, suites), (t.maneuver_oversample, maneuvers)):
        repeats = repeats * np.array([int(weights.get(k, 1)) for k in keys], dtype=np.int64).reshape(repeats.shape)
    return None if bool((repeats == 1).all()) else repeats


def dagger_windows(round_dir: DaggerRoundDir, spec: PlannerWindowSpec, tokenizer_identity: dict[str, Any] | None,
                   base_tokens: TokenStore) -> PlannerWindowDataset:
    """The windows of one DAgger round (its rollouts' tokens, targets the expert's plans), checked to
    be tokenized like the original data."""
    tokens = TokenStore(round_dir.tokens)
    recorded = (tokens.tokenizer or {}).get("weights_sha256")
    if tokenizer_identity is not None and recorded is not None and recorded != tokenizer_identity.get("weights_sha256"):
        raise ValueError(f"DAgger tokens {round_dir.tokens} were made with another tokenizer (weights SHA-256 differs)")
    if tuple(tokens.grid_hw) != tuple(base_tokens.grid_hw):
        raise ValueError(f"DAgger tokens {round_dir.tokens} hold {tuple(tokens.grid_hw)} tokens, the training data {tuple(base_tokens.grid_hw)}")
    return PlannerWindowDataset(ClipStore(round_dir.clips), tokens, spec, expert_labels=True)
