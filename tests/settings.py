"""Settings that unit tests build models with, spelled out.

The product's settings dataclasses have no defaults (configs/ holds every default of a command), so
a test that builds a model by hand says here what it runs with. `REFERENCE_ACTION` is the
reference system's parameterisation (waypoints / 70 m, no ego status, no anchor), which the
action-model unit tests were written against; the commands' own defaults are `configs.defaults(...)`.
"""

from __future__ import annotations

from typing import Any

import torch

from planner.action_model.config import ActionModelConfig
from planner.action_model.lightning_module import FlowTrainingConfig, VAMOptimConfig
from planner.batch import PlannerBatch
from planner.flow_matching import PI0_TIME_SAMPLER, TimeSampler
from planner.inference import InferenceSettings
from planner.vam import VAMPlannerConfig
from world_model.optim import OptimConfig
from world_model.schedule import WSDSchedule

REFERENCE_ACTION: dict[str, Any] = dict(
    video_mode="observed", n_imagined_frames=0, num_waypoints=6, waypoint_dt_s=0.5, predict_yaw=False, expert_width_ratio=0.25,
    dropout=0.0, ego_status="off", ego_history_steps=3, ego_history_dt_s=0.5, position_scale_m=70.0, yaw_scale_rad=1.0,
    history_scale_m=10.0, speed_scale_mps=10.0, accel_scale_mps2=2.0, yaw_rate_scale_rps=0.5, time_min_period=4e-3,
    time_max_period=4.0, anchor="none", waypoint_scale_power=0.0, observed_frames=0, ego_features="full", route_points_m=(),
)


def action_config(**changes: Any) -> ActionModelConfig:
    """The reference parameterisation with `changes`."""
    return ActionModelConfig(**{**REFERENCE_ACTION, **changes})


def time_sampler(law: str = "beta") -> TimeSampler:
    """pi0's time law, or another law with the same parameters."""
    return TimeSampler(**{**PI0_TIME_SAMPLER.__dict__, "law": law})


def wsd(total_steps: int, warmup_frac: float = 0.0, decay_frac: float = 0.0, final_frac: float = 0.1, decay_shape: str = "linear") -> WSDSchedule:
    return WSDSchedule(total_steps=total_steps, warmup_frac=warmup_frac, decay_frac=decay_frac, final_frac=final_frac, decay_shape=decay_shape)


def vam_optim(schedule: WSDSchedule, lr: float = 3e-3, world_model_lr: float | None = None) -> VAMOptimConfig:
    return VAMOptimConfig(schedule=schedule, lr=lr, world_model_lr=world_model_lr, weight_decay=0.01, betas=(0.9, 0.95), eps=1e-8)


def gpt_optim(schedule: WSDSchedule, lr: float = 3e-3) -> OptimConfig:
    return OptimConfig(schedule=schedule, lr=lr, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8)


def flow_config(**changes: Any) -> FlowTrainingConfig:
    values = dict(time_sampler=PI0_TIME_SAMPLER, sigma_min=1e-3, samples_per_window=1, seed=0, eval_samples=10, eval_steps=10, eval_solver="euler")
    return FlowTrainingConfig(**{**values, **changes})


# One sample per plan (sample 0) after 10 Euler steps: what the unit tests' exports plan with.
ONE_SAMPLE = InferenceSettings(n_steps=10, solver="euler", n_samples=1, aggregate="first")


def vam_config(n_samples: int = 1, aggregate: str = "first", frame_period_s: float = 0.5, **changes: Any) -> VAMPlannerConfig:
    """One sample per plan (sample 0), 10 Euler steps, CPU, fp32, frames every 0.5 s."""
    values = dict(inference=InferenceSettings(n_steps=10, solver="euler", n_samples=n_samples, aggregate=aggregate), seed=0,
                  frame_period_s=frame_period_s, device="cpu", precision="fp32")
    return VAMPlannerConfig(**{**values, **changes})


def planner_batch(command: torch.Tensor, speed_mps: torch.Tensor, *, accel_mps2: torch.Tensor | None = None, yaw_rate_rps: torch.Tensor | None = None,
                  past_poses: torch.Tensor | None = None, frame_times_s: torch.Tensor | None = None, trajectory: torch.Tensor | None = None,
                  trajectory_valid: torch.Tensor | None = None, tokens: torch.Tensor | None = None, future_tokens: torch.Tensor | None = None,
                  num_waypoints: int = 6) -> PlannerBatch:
    """A PlannerBatch of B = len(command) windows; what is not given is zero (motion, the current
    pose as the only past pose, a trajectory of K zero waypoints, all valid)."""
    b = len(command)
    zeros = torch.zeros(b)
    return PlannerBatch(
        trajectory=torch.zeros(b, num_waypoints, 3) if trajectory is None else trajectory,
        trajectory_valid=torch.ones(b, num_waypoints, dtype=torch.bool) if trajectory_valid is None else trajectory_valid,
        command=command.long(),
        speed_mps=speed_mps,
        accel_mps2=zeros if accel_mps2 is None else accel_mps2,
        yaw_rate_rps=zeros if yaw_rate_rps is None else yaw_rate_rps,
        past_poses=torch.zeros(b, 1, 3) if past_poses is None else past_poses,
        frame_times_s=torch.zeros(b, 1) if frame_times_s is None else frame_times_s,
        n_padded=torch.zeros(b, dtype=torch.int64),
        clip_index=torch.zeros(b, dtype=torch.int64),
        frame_index=torch.zeros(b, dtype=torch.int64),
        tokens=tokens,
        future_tokens=future_tokens,
    )
