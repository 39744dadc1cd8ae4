"""The optimiser of every transformer we train: AdamW at a peak learning rate that follows the
warmup-stable-decay schedule, stepped every optimizer step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from configs import build
from world_model.schedule import WSDSchedule


@dataclass(frozen=True)
class OptimConfig:
    """AdamW at peak `lr` with the WSD schedule; weight_decay (on 2-D weights only, by the param groups), betas, eps."""

    schedule: WSDSchedule
    lr: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.eps <= 0:
            raise ValueError(f"{type(self).__name__}: lr and eps must be > 0 and weight_decay >= 0, got {self}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"{type(self).__name__}.betas must be two numbers in [0, 1), got {self.betas}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "OptimConfig":
        """From `asdict` output (a checkpoint's hparams)."""
        return build(cls, values, cls.__name__)


def adamw_with_schedule(param_groups: Sequence[dict[str, Any]], optim: OptimConfig) -> dict[str, Any]:
    """`configure_optimizers` output: AdamW over the non-empty `param_groups` (each with its own lr and
    weight_decay) and a per-step LambdaLR applying the WSD factor to every group."""
    optimizer = torch.optim.AdamW([g for g in param_groups if g["params"]], betas=optim.betas, eps=optim.eps)
    schedule = optim.schedule

    def lr_factor(step: int) -> float:
        return schedule.factor(step)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lr_factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
