"""Fixed-step ODE solvers for sampling: integrate dx/dt = v(x, t) from t = 0 (noise) to t = 1 (data)."""

from __future__ import annotations

from typing import Callable

import torch

VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]
ODE_SOLVERS = ("euler", "midpoint")


def solve_ode(velocity_fn: VelocityFn, x0: torch.Tensor, n_steps: int, method: str = "euler") -> torch.Tensor:
    """x(1) from x(0) = x0 with `n_steps` equal steps of the given method.

    velocity_fn(x, t) -> dx/dt, same shape as x, at the scalar time t [0, 1].
    euler: x += h v(x, t) (one velocity call per step; exact for velocities constant in x and t).
    midpoint: x += h v(x + h/2 v(x, t), t + h/2) (two calls per step, second order).
    """
    if method not in ODE_SOLVERS:
        raise ValueError(f"solve_ode: unknown method {method!r}; expected one of {ODE_SOLVERS}")
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"solve_ode: n_steps must be a positive int, got {n_steps!r}")
    h = 1.0 / n_steps
    x = x0
    for i in range(n_steps):
        t = i * h
        v = velocity_fn(x, t)
        if method == "midpoint":
            v = velocity_fn(x + 0.5 * h * v, t + 0.5 * h)
        x = x + h * v
    return x
