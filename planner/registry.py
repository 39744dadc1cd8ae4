"""Planners by name, for the CLI and the evaluation workers (which rebuild them in each process)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from planner.contract import Planner


def _constant_velocity(cfg: Mapping[str, Any]) -> Planner:
    from planner.baselines.constant_velocity import ConstantVelocityPlanner

    return ConstantVelocityPlanner(num_waypoints=int(cfg.get("num_waypoints", 6)), dt_s=float(cfg.get("plan_dt_s", 0.5)))


def _expert(cfg: Mapping[str, Any]) -> Planner:
    from planner.baselines.expert import ExpertPlanner

    return ExpertPlanner()


def _log_replay(cfg: Mapping[str, Any]) -> Planner:
    from planner.baselines.log_replay import LogReplayPlanner

    return LogReplayPlanner(num_waypoints=int(cfg.get("num_waypoints", 6)), dt_s=float(cfg.get("plan_dt_s", 0.5)))


PLANNERS: dict[str, Callable[[Mapping[str, Any]], Planner]] = {
    "constant_velocity": _constant_velocity,
    "expert": _expert,
    "log_replay": _log_replay,
}


def build_planner(name: str, cfg: Mapping[str, Any] | None = None) -> Planner:
    """A fresh planner `name` configured by `cfg` (e.g. checkpoint=... for learned planners)."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; known: {', '.join(sorted(PLANNERS))}")
    return PLANNERS[name](cfg or {})
