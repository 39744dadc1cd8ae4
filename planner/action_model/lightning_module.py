"""Thin Lightning module training the action model with flow matching.

Batches are `planner.batch.PlannerBatch`: the observed frames' tokens (unused in no-video mode),
the logged future trajectory and its validity, the command and ego status, and in imagine mode
optionally the true next frames standing in for imagined ones (teacher forcing; without them
training imagines with the world model like inference does).

The world model is frozen (eval mode, no gradients, video keys/values computed without a graph)
unless `VAMOptimConfig.world_model_lr` is set. Flow noise and times come from the module's own
torch.Generator (`checkpointed_generators`); the training loop saves it with the CPU (and CUDA) RNG
states in every checkpoint, so a resumed run continues bit-exactly (single process).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch

from configs import build
from planner.action_model.conditions import conditions_from_batch
from planner.action_model.config import ActionModelConfig
from planner.action_model.metrics import open_loop_metrics
from planner.action_model.model import VideoActionModel
from planner.action_model.normalization import trajectory_to_model
from planner.action_model.sampling import sample_plans
from planner.batch import PlannerBatch
from planner.flow_matching import ODE_SOLVERS, RectifiedFlowPath, TimeSampler, flow_matching_loss
from world_model.gpt.config import GPTConfig
from world_model.gpt.model import GPT
from world_model.optim import OptimConfig, adamw_with_schedule


@dataclass(frozen=True)
class VAMOptimConfig(OptimConfig):
    """AdamW at peak `lr` (expert) with the WSD schedule; world_model_lr: the world model's peak LR
    (None keeps it frozen)."""

    world_model_lr: float | None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.world_model_lr is not None and self.world_model_lr <= 0:
            raise ValueError(f"VAMOptimConfig.world_model_lr must be > 0 or None, got {self.world_model_lr}")


@dataclass(frozen=True)
class FlowTrainingConfig:
    """Flow-matching objective and evaluation sampling.

    samples_per_window: flow (noise, t) draws per video window per step; they share one video pass.
    eval_*: open-loop validation samples per window, ODE steps and solver.
    """

    time_sampler: TimeSampler
    sigma_min: float
    samples_per_window: int
    seed: int
    eval_samples: int
    eval_steps: int
    eval_solver: str

    def __post_init__(self) -> None:
        if self.samples_per_window < 1 or self.eval_samples < 1 or self.eval_steps < 1:
            raise ValueError(f"FlowTrainingConfig: samples_per_window, eval_samples, eval_steps must be >= 1, got {self}")
        if self.eval_solver not in ODE_SOLVERS:
            raise ValueError(f"FlowTrainingConfig.eval_solver must be one of {ODE_SOLVERS}, got {self.eval_solver!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "FlowTrainingConfig":
        return build(cls, values, cls.__name__)


def _as(cls: type, value: Any) -> Any:
    return value if isinstance(value, cls) else cls.from_dict(dict(value))


class VAMLightningModule(L.LightningModule):
    """Flow-matching training of `VideoActionModel`; hparams hold every config as plain dicts, so a
    checkpoint rebuilds the module with `load_from_checkpoint(..., weights_only=True)`.

    Start from a pretrained world model with `load_world_model(gpt)` after construction.
    """

    def __init__(
        self,
        world_model: GPTConfig | Mapping[str, Any],
        action_model: ActionModelConfig | Mapping[str, Any],
        optim: VAMOptimConfig | Mapping[str, Any],
        flow: FlowTrainingConfig | Mapping[str, Any],
    ) -> None:
        super().__init__()
        gpt_config = world_model if isinstance(world_model, GPTConfig) else GPTConfig.from_dict(dict(world_model))
        self.action_config: ActionModelConfig = _as(ActionModelConfig, action_model)
        self.optim_config: VAMOptimConfig = _as(VAMOptimConfig, optim)
        self.flow_config: FlowTrainingConfig = _as(FlowTrainingConfig, flow)
        self.save_hyperparameters(
            {
                "world_model": asdict(gpt_config),
                "action_model": self.action_config.to_dict(),
                "optim": asdict(self.optim_config),
                "flow": asdict(self.flow_config),
            }
        )
        self.model = VideoActionModel(gpt_config, self.action_config)
        self.path = RectifiedFlowPath(self.flow_config.sigma_min)
        self.generator = torch.Generator().manual_seed(self.flow_config.seed)
        self.checkpointed_generators = {"flow_generator": self.generator}  # saved in checkpoints by the training loop
        if self.model.world_model is not None and self.world_model_frozen:
            self.model.world_model.requires_grad_(False).eval()

    @property
    def world_model_frozen(self) -> bool:
        return self.optim_config.world_model_lr is None

    def load_world_model(self, gpt: GPT) -> None:
        """Copy a (pretrained) world model's weights into the model's video stream."""
        if self.model.world_model is None:
            raise ValueError("VAMLightningModule.load_world_model: video_mode='none' has no world model")
        if gpt.config != self.model.world_model_config:
            raise ValueError(f"VAMLightningModule.load_world_model: config {gpt.config} != {self.model.world_model_config}")
        self.model.world_model.load_state_dict(gpt.state_dict())

    def train(self, mode: bool = True) -> "VAMLightningModule":
        super().train(mode)
        if self.model.world_model is not None and self.world_model_frozen:
            self.model.world_model.eval()  # a frozen world model never runs dropout
        return self

    def flow_loss(self, batch: PlannerBatch, generator: torch.Generator) -> torch.Tensor:
        """Flow-matching loss of one batch with noise and times drawn from `generator`."""
        c = self.action_config
        trajectory = batch.trajectory
        if trajectory.ndim != 3 or trajectory.shape[1] != c.num_waypoints:
            raise ValueError(f"batch.trajectory must be (B, {c.num_waypoints}, >=2), got {tuple(trajectory.shape)}")
        batch_size, n_samples = trajectory.shape[0], self.flow_config.samples_per_window
        conditions = conditions_from_batch(batch, c).to(self.device)
        x1 = trajectory_to_model(trajectory.float(), c, conditions.anchor)[:, None].expand(-1, n_samples, -1, -1)  # (B, S, K, D)
        mask = batch.trajectory_valid.bool()[:, None].expand(-1, n_samples, -1)  # (B, S, K)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.world_model_frozen):
            video = self.model.context(batch.tokens, batch.future_tokens)
        t = self.flow_config.time_sampler.sample((batch_size, n_samples), generator).to(self.device)
        noise = torch.randn(x1.shape, generator=generator, device=generator.device).to(self.device)
        sample = self.path.sample(x1, noise, t)
        return flow_matching_loss(self.model.velocity(video, sample.x_t, sample.t, conditions), sample.velocity, mask)

    def training_step(self, batch: PlannerBatch, batch_idx: int) -> torch.Tensor:
        loss = self.flow_loss(batch, self.generator)
        batch_size = len(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=batch_size)
        return loss

    def validation_step(self, batch: PlannerBatch, batch_idx: int) -> None:
        f = self.flow_config
        # Fixed per-batch seeds: validation numbers do not depend on when or how often it runs.
        generator = torch.Generator().manual_seed(f.seed + 1_000_003 * (batch_idx + 1))
        self.log("val/loss", self.flow_loss(batch, generator), prog_bar=True, batch_size=len(batch))
        plans = sample_plans(self.model, batch, f.eval_samples, f.eval_steps, f.eval_solver, generator)  # (B, S, K, 2)
        metrics = open_loop_metrics(plans, batch.trajectory[..., :2].to(plans.device), batch.trajectory_valid, self.action_config.waypoint_dt_s)
        for name, value in metrics.items():
            if value.count:
                self.log(f"val/{name}", value.mean, batch_size=value.count)

    def configure_optimizers(self) -> dict[str, Any]:
        o = self.optim_config
        decay, no_decay = [], []
        for p in self.model.expert.parameters():
            (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [
            {"name": "expert", "params": decay, "lr": o.lr, "weight_decay": o.weight_decay},
            {"name": "expert_no_decay", "params": no_decay, "lr": o.lr, "weight_decay": 0.0},
        ]
        if self.model.world_model is not None and o.world_model_lr is not None:
            for group in self.model.world_model.param_groups(o.world_model_lr, o.weight_decay):
                groups.append({**group, "name": f"world_model_{group['name']}"})
        return adamw_with_schedule(groups, o)
