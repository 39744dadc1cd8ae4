"""Planners by name: the one registry, for the CLI, the evaluation workers (which rebuild planners in
each process) and notebooks.

It is the one place that imports both the learned planners (`planner/`) and the simulator's
privileged baselines (`sim_eval/agents/`). Options per planner:
  constant_velocity, log_replay, expert: their section of `baselines` (configs/baselines/default.yaml
      when not given);
  vam:     checkpoint (an export, OUT/vam of `foresight train planner`; required), and optionally
           tokenizer, n_steps, solver, n_samples, aggregate, video_mode, n_imagined_frames, seed,
           device, precision: see `planner.vam.VAMPlanner.from_checkpoint` (None or absent: what the
           export recorded, or that function's defaults);
  ego_mlp: checkpoint (an export directory holding ego_mlp.*).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from configs import build, defaults
from contract import Planner
from sim_eval.evaluate import PlannerSource

BASELINES = ("constant_velocity", "log_replay", "expert")
VAM_OPTIONS = ("tokenizer", "n_steps", "solver", "n_samples", "aggregate", "video_mode", "n_imagined_frames", "seed", "device", "precision")


def _baseline_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(options) if options else defaults("baselines/default")[name]


def _constant_velocity(options: Mapping[str, Any] | None) -> Planner:
    from planner.baselines.constant_velocity import ConstantVelocityPlanner

    o = _baseline_options("constant_velocity", options)
    return ConstantVelocityPlanner(int(o["num_waypoints"]), float(o["plan_dt_s"]))


def _log_replay(options: Mapping[str, Any] | None) -> Planner:
    from sim_eval.agents.log_replay import LogReplayPlanner

    o = _baseline_options("log_replay", options)
    return LogReplayPlanner(int(o["num_waypoints"]), float(o["plan_dt_s"]))


def _expert(options: Mapping[str, Any] | None) -> Planner:
    from sim_eval.agents.expert import ExpertConfig, ExpertPlanner

    return ExpertPlanner(build(ExpertConfig, _baseline_options("expert", options), "baselines.expert"))


def _checkpoint(options: Mapping[str, Any] | None, name: str) -> str:
    checkpoint = (options or {}).get("checkpoint")
    if not checkpoint:
        raise ValueError(f"planner {name!r} needs checkpoint=<exported planner directory> (e.g. OUT/vam of `foresight train planner`)")
    return str(checkpoint)


def _vam(options: Mapping[str, Any] | None) -> Planner:
    from planner.vam import VAMPlanner

    options = dict(options or {})
    unknown = sorted(set(options) - {"checkpoint", *VAM_OPTIONS})
    if unknown:
        raise ValueError(f"planner 'vam': unknown options {unknown}; known: checkpoint, {', '.join(VAM_OPTIONS)}")
    checkpoint = _checkpoint(options, "vam")
    given = {k: options[k] for k in VAM_OPTIONS if options.get(k) is not None}
    return VAMPlanner.from_checkpoint(checkpoint, **given)


def _ego_mlp(options: Mapping[str, Any] | None) -> Planner:
    from planner.ego_mlp import EgoMLPPlanner, load_ego_mlp

    return EgoMLPPlanner(load_ego_mlp(_checkpoint(options, "ego_mlp")))


PLANNERS: dict[str, Callable[[Mapping[str, Any] | None], Planner]] = {
    "constant_velocity": _constant_velocity,
    "expert": _expert,
    "log_replay": _log_replay,
    "vam": _vam,
    "ego_mlp": _ego_mlp,
}


def build_planner(name: str, options: Mapping[str, Any] | None = None) -> Planner:
    """A fresh planner `name` with its options (see the module docstring)."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; known: {', '.join(sorted(PLANNERS))}")
    return PLANNERS[name](options)


def planner_options(name: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The options of planner `name` in a composed command config: its `baselines` section for a
    baseline, else `checkpoint` and the `vam` section's keys that are set (configs/vam/default.yaml)."""
    if name in BASELINES:
        return dict(cfg["baselines"][name])
    options = {"checkpoint": cfg.get("checkpoint")} if cfg.get("checkpoint") is not None else {}
    if name == "vam":
        options.update({k: v for k, v in (cfg.get("vam") or {}).items() if v is not None})
    return options


def planner_source(name: str, options: Mapping[str, Any] | None = None) -> PlannerSource:
    """What `sim_eval.evaluate` runs: the planner's name, its options (a baseline's defaults filled
    in, so metrics.json records what ran), and a picklable builder."""
    options = _baseline_options(name, options) if name in BASELINES else dict(options or {})
    return PlannerSource(name, options, functools.partial(build_planner, name, options))
