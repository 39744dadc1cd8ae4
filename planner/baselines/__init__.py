"""Reference planners the learned planner is compared with."""

from planner.baselines.constant_velocity import ConstantVelocityPlanner

__all__ = ["ConstantVelocityPlanner"]
