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

A planner of the user's own is named by its import string, `package.module:ClassName` (any subclass of
`contract.Planner` importable from sys.path or the working directory): its options (the config's
`planner_options`, given as `+planner_options.KEY=VALUE`) go to `ClassName.from_options(options)`
when the class defines that classmethod, else to the constructor as keyword arguments. The source
of a plug-in planner holds the import string, never the class, so that evaluation workers rebuild
it by importing the module themselves.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import os
import sys
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


class PluginPlannerError(ValueError):
    """A plug-in planner (`package.module:ClassName`) that cannot be imported or built; the message
    names the import string and what failed."""


def is_plugin(name: str) -> bool:
    """`name` is a plug-in planner's import string (`package.module:ClassName`), not a registry name."""
    return ":" in name


def _split_import_string(spec: str) -> tuple[str, str]:
    """(module, attribute) of `package.module:ClassName` (the attribute may be dotted: `Outer.Inner`)."""
    module, _, attribute = spec.partition(":")
    names = [*module.split("."), *attribute.split(".")]
    if not module or not attribute or not all(n.isidentifier() for n in names):
        raise PluginPlannerError(f"planner {spec!r} is not an import string: a plug-in planner is named "
                                 "`package.module:ClassName` (importable from sys.path or the working directory)")
    return module, attribute


def _launch_dir() -> str:
    """The directory the command was started in: Hydra's original working directory when a Hydra
    app changed into its run directory, else the current one."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return os.path.abspath(HydraConfig.get().runtime.cwd)
    except Exception:  # no Hydra app, or one without a runtime record: the current directory is the launch directory
        pass
    return os.getcwd()


def _import_module(spec: str, module: str) -> Any:
    """Import `module` with the working directory on sys.path (last, so that it shadows no installed
    package): the console script, unlike `python -m`, does not put it there. Spawned evaluation
    workers start with the parent's sys.path, so they find it too."""
    cwd = _launch_dir()
    if not any(os.path.abspath(p or os.curdir) == cwd for p in sys.path):
        sys.path.append(cwd)
    try:
        return importlib.import_module(module)
    except Exception as error:
        missing = isinstance(error, ModuleNotFoundError) and error.name is not None and (module + ".").startswith(error.name + ".")
        if missing:  # the module itself (or its package) is not on the path, not an import inside it
            raise PluginPlannerError(f"planner {spec!r}: cannot import module {module!r}: {type(error).__name__}: {error} "
                                     f"(searched sys.path, which includes the working directory {cwd})") from error
        raise PluginPlannerError(f"planner {spec!r}: importing module {module!r} raised {type(error).__name__}: {error}") from error


def plugin_planner_class(spec: str) -> type[Planner]:
    """The class named by `package.module:ClassName`, checked to be a concrete `contract.Planner`."""
    module_name, attribute = _split_import_string(spec)
    module = _import_module(spec, module_name)
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            found = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, Planner) and v.__module__ == module.__name__)
            where = getattr(module, "__file__", None) or module_name
            raise PluginPlannerError(f"planner {spec!r}: module {module_name!r} ({where}) has no attribute {attribute!r}; "
                                     + (f"the Planner classes it defines: {', '.join(found)}" if found else "it defines no Planner subclass"))
        target = getattr(target, part)
    if not (inspect.isclass(target) and issubclass(target, Planner)):
        what = f"the class {target.__qualname__}" if inspect.isclass(target) else f"a {type(target).__name__}"
        raise PluginPlannerError(f"planner {spec!r} is {what}, not a subclass of contract.Planner")
    if inspect.isabstract(target):
        raise PluginPlannerError(f"planner {spec!r}: {target.__qualname__} is abstract; it does not implement "
                                 f"{', '.join(sorted(target.__abstractmethods__))} (contract/planner.py)")
    return target


def plugin_takes_option(cls: type[Planner], key: str) -> bool:
    """Whether `cls` can be given option `key`: its constructor names it or takes **kwargs (a class
    with `from_options` reads the options itself, so it is taken at its word)."""
    if callable(getattr(cls, "from_options", None)):
        return True
    parameters = inspect.signature(cls).parameters.values()
    return any(p.name == key or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _build_plugin(spec: str, options: Mapping[str, Any] | None) -> Planner:
    cls = plugin_planner_class(spec)
    options = copy.deepcopy(dict(options or {}))  # the class may change its copy; the recorded options stay as given
    from_options = getattr(cls, "from_options", None)
    call = f"{cls.__qualname__}.from_options({options!r})" if callable(from_options) else f"{cls.__qualname__}(**{options!r})"
    try:
        planner = from_options(options) if callable(from_options) else cls(**options)
    except Exception as error:
        raise PluginPlannerError(f"planner {spec!r}: {call} raised {type(error).__name__}: {error}") from error
    if not isinstance(planner, Planner):
        raise PluginPlannerError(f"planner {spec!r}: {call} returned a {type(planner).__name__}, not a contract.Planner")
    return planner


def planner_batched(name: str) -> bool:
    """Whether planner `name` (a registry name or a plug-in's import string) declares `batched`
    (`contract.Planner.batched`: one model call serves several episodes), read from its class
    without building it."""
    if is_plugin(name):
        return plugin_planner_class(name).batched
    if name == "vam":
        from planner.vam import VAMPlanner

        return VAMPlanner.batched
    return False  # the baselines and the ego MLP plan one episode per call


def build_planner(name: str, options: Mapping[str, Any] | None = None) -> Planner:
    """A fresh planner `name` (a registry name or a plug-in's `package.module:ClassName`) with its
    options (see the module docstring)."""
    if is_plugin(name):
        return _build_plugin(name, options)
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; known: {', '.join(sorted(PLANNERS))}, "
                         "or a plug-in planner as `package.module:ClassName`")
    return PLANNERS[name](options)


def planner_options(name: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The options of planner `name` in a composed command config: a plug-in's `planner_options`;
    a baseline's `baselines` section; else `checkpoint` and the `vam` section's keys that are set
    (configs/vam/default.yaml). `planner_options` given to a registry planner, or `checkpoint` to a
    plug-in, is refused rather than ignored."""
    given = cfg.get("planner_options")
    if given is not None and not isinstance(given, Mapping):
        raise ValueError(f"planner_options must be a mapping (+planner_options.KEY=VALUE), got {given!r}")
    if is_plugin(name):
        if cfg.get("checkpoint") is not None:
            raise ValueError(f"checkpoint= is read by the vam and ego_mlp planners only; pass the plug-in planner {name!r} "
                             "its settings as +planner_options.KEY=VALUE (e.g. +planner_options.checkpoint=...)")
        return dict(given or {})
    if given:
        raise ValueError(f"planner_options are for plug-in planners (`package.module:ClassName`); planner {name!r} "
                         "takes its settings from " + (f"baselines.{name}.*" if name in BASELINES else "checkpoint=" + (" and vam.*" if name == "vam" else "")))
    if name in BASELINES:
        return dict(cfg["baselines"][name])
    options = {"checkpoint": cfg.get("checkpoint")} if cfg.get("checkpoint") is not None else {}
    if name == "vam":
        options.update({k: v for k, v in (cfg.get("vam") or {}).items() if v is not None})
    return options


def planner_source(name: str, options: Mapping[str, Any] | None = None) -> PlannerSource:
    """What `sim_eval.evaluate` runs: the planner's name (a plug-in's import string), its options (a
    baseline's defaults filled in, so metrics.json records what ran), and a picklable builder: the
    name and options bound to `build_planner`, so each worker process imports a plug-in itself."""
    options = _baseline_options(name, options) if name in BASELINES else dict(options or {})
    return PlannerSource(name, options, functools.partial(build_planner, name, options))
