"""Flow matching in small orthogonal pieces: a probability path, a time law, a loss, an ODE solver.

Convention: t = 0 is noise, t = 1 is data. A training step is three lines:

    t = time_sampler.sample(batch, generator)
    sample = path.sample(x1, noise, t)
    loss = flow_matching_loss(model(sample.x_t, sample.t), sample.velocity)

and sampling integrates the learned velocity from noise with `solve_ode`.
"""

from planner.flow_matching.loss import flow_matching_loss
from planner.flow_matching.path import PathSample, RectifiedFlowPath
from planner.flow_matching.solver import ODE_SOLVERS, solve_ode
from planner.flow_matching.time_sampler import PI0_TIME_SAMPLER, TIME_LAWS, TimeSampler

__all__ = [
    "ODE_SOLVERS",
    "PI0_TIME_SAMPLER",
    "PathSample",
    "RectifiedFlowPath",
    "TIME_LAWS",
    "TimeSampler",
    "flow_matching_loss",
    "solve_ode",
]
