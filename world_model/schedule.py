"""Warmup-stable-decay (WSD) learning-rate schedule, as a pure function of the optimiser step.

factor(step) multiplies the peak LR:
  warmup  steps [0, W):          linear ramp (step + 1) / W, so step 0 already trains;
  stable  steps [W, S - D):      1;
  decay   steps [S - D, S):      from 1 down to `final_frac`, reached exactly at the last step S - 1
                                 (linear, or half a cosine);
  after   steps >= S:            final_frac.
with S = total_steps, W = round(warmup_frac * S), D = round(decay_frac * S).
A stage-2 fine-tune that runs only the decay phase uses warmup_frac=0, decay_frac=1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class WSDSchedule:
    total_steps: int
    warmup_frac: float
    decay_frac: float
    final_frac: float
    decay_shape: Literal["linear", "cosine"]

    def __post_init__(self) -> None:
        if not isinstance(self.total_steps, int) or self.total_steps < 1:
            raise ValueError(f"WSDSchedule.total_steps must be a positive int, got {self.total_steps!r}")
        for name in ("warmup_frac", "decay_frac", "final_frac"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"WSDSchedule.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.warmup_steps + self.decay_steps > self.total_steps:
            raise ValueError(f"WSDSchedule: warmup_frac + decay_frac = {self.warmup_frac + self.decay_frac} exceeds 1")
        if self.decay_shape not in ("linear", "cosine"):
            raise ValueError(f"WSDSchedule.decay_shape must be 'linear' or 'cosine', got {self.decay_shape!r}")

    @property
    def warmup_steps(self) -> int:
        return round(self.warmup_frac * self.total_steps)

    @property
    def decay_steps(self) -> int:
        return round(self.decay_frac * self.total_steps)

    @property
    def decay_start(self) -> int:
        return self.total_steps - self.decay_steps

    def factor(self, step: int) -> float:
        """LR multiplier (of the peak LR) at optimiser step `step` >= 0."""
        if step < 0:
            raise ValueError(f"WSDSchedule.factor: step must be >= 0, got {step}")
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if step < self.decay_start:
            return 1.0
        if step >= self.total_steps:
            return self.final_frac
        progress = (step - self.decay_start + 1) / self.decay_steps  # in (0, 1], 1 at the last step
        if self.decay_shape == "linear":
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.final_frac + (1.0 - self.final_frac) * shape
