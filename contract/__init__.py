"""The contract between the simulator (sim_eval) and the planners (planner): what a planner sees,
what it returns and declares, and the geometry both sides share. Neither side imports the other;
both import this package.

    from contract import Observation, Plan, Planner, validate_plan
"""

from contract.frames import ego_to_world, world_to_ego
from contract.observation import EpisodeInfo, Observation, PrivilegedState
from contract.plan import Plan, validate_plan
from contract.planner import FixedHorizonPlanner, Planner

__all__ = ["EpisodeInfo", "FixedHorizonPlanner", "Observation", "Plan", "Planner", "PrivilegedState", "ego_to_world", "validate_plan", "world_to_ego"]
