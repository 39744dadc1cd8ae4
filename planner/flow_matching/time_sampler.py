"""Laws of the flow time t used in training (t = 0 noise, t = 1 data), drawn from an explicit generator.

beta (default, pi0 / reference VaVAM): t = t_max * (1 - B) with B ~ Beta(alpha, 1), alpha = 1.5,
    t_max = 0.999. This is pi0's p(t) = Beta((t_max - t) / t_max; 1.5, 1) in our convention: B
    leans toward 1, so t leans toward 0, i.e. toward noise, where the velocity is hardest to
    predict; t never reaches 1 (the data end). Support [0, t_max], mean t_max / (alpha + 1)
    (0.3996 by default). Beta(alpha, 1) has CDF b^alpha, so B = U^(1/alpha) with U uniform.
uniform: t ~ U[0, 1), mean 1/2.
logit_normal (SD3): t = sigmoid(m + s N), N standard normal; mean 1/2 for m = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TIME_LAWS = ("beta", "uniform", "logit_normal")


@dataclass(frozen=True)
class TimeSampler:
    """A law of t; see the module docstring for each law's parameters (`planner.flow.time_sampler`;
    the defaults live in configs/planner_profile/, `PI0_TIME_SAMPLER` is the reference's law)."""

    law: str
    beta_alpha: float
    t_max: float
    logit_mean: float
    logit_std: float

    def __post_init__(self) -> None:
        if self.law not in TIME_LAWS:
            raise ValueError(f"TimeSampler.law must be one of {TIME_LAWS}, got {self.law!r}")
        if self.beta_alpha <= 0:
            raise ValueError(f"TimeSampler.beta_alpha must be > 0, got {self.beta_alpha}")
        if not 0.0 < self.t_max <= 1.0:
            raise ValueError(f"TimeSampler.t_max must be in (0, 1], got {self.t_max}")
        if self.logit_std <= 0:
            raise ValueError(f"TimeSampler.logit_std must be > 0, got {self.logit_std}")

    def sample(self, shape: int | tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """Flow times of the given shape, float32, on the generator's device."""
        if not isinstance(generator, torch.Generator):
            raise TypeError("TimeSampler.sample needs an explicit torch.Generator")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        device = generator.device
        if self.law == "uniform":
            return torch.rand(shape, generator=generator, device=device)
        if self.law == "logit_normal":
            normal = torch.randn(shape, generator=generator, device=device)
            return torch.sigmoid(self.logit_mean + self.logit_std * normal)
        beta = torch.rand(shape, generator=generator, device=device).pow(1.0 / self.beta_alpha)  # ~ Beta(alpha, 1)
        return self.t_max * (1.0 - beta)


# The reference's (pi0 / VaVAM) law: beta with alpha 1.5 and t_max 0.999.
PI0_TIME_SAMPLER = TimeSampler(law="beta", beta_alpha=1.5, t_max=0.999, logit_mean=0.0, logit_std=1.0)
