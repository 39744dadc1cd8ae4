"""The rectified-flow probability path with a minimum noise level (as in pi0 / the reference VaVAM).

    x_t = (1 - (1 - s) t) * eps + t * x1,        t in [0, 1], s = sigma_min
    u_t = d x_t / dt = x1 - (1 - s) * eps         (the regression target, constant in t)

At t = 0 the sample is pure noise; at t = 1 it is the data plus s * eps, so the endpoint keeps a
little noise and the conditional paths never collapse to a point.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PathSample:
    """x_t: the noisy point; t: its flow time, shaped to broadcast against x_t's leading dims;
    velocity: the conditional target velocity u_t (same shape as x_t)."""

    x_t: torch.Tensor
    t: torch.Tensor
    velocity: torch.Tensor


@dataclass(frozen=True)
class RectifiedFlowPath:
    """Linear interpolation from Gaussian noise to data with endpoint noise `sigma_min`."""

    sigma_min: float = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 <= self.sigma_min < 1.0:
            raise ValueError(f"RectifiedFlowPath.sigma_min must be in [0, 1), got {self.sigma_min}")

    def sample(self, x1: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> PathSample:
        """Point and target velocity at time t for data x1 (..., D) and noise (same shape).

        t: flow times for x1's leading dims (e.g. (B,) or (B, S)); it is broadcast over the
        remaining trailing dims.
        """
        if noise.shape != x1.shape:
            raise ValueError(f"RectifiedFlowPath.sample: noise shape {tuple(noise.shape)} != x1 shape {tuple(x1.shape)}")
        if t.ndim > x1.ndim or tuple(t.shape) != tuple(x1.shape[: t.ndim]):
            raise ValueError(f"RectifiedFlowPath.sample: t shape {tuple(t.shape)} must be a leading part of x1 shape {tuple(x1.shape)}")
        tb = t.reshape(*t.shape, *([1] * (x1.ndim - t.ndim))).to(x1.dtype)
        keep = 1.0 - self.sigma_min
        x_t = (1.0 - keep * tb) * noise + tb * x1
        return PathSample(x_t=x_t, t=t, velocity=x1 - keep * noise)
