"""Defaults live in one place: every command's composed config builds its typed settings, and those
settings dataclasses (and every dataclass nested in them) have no defaults of their own that could
drift from the YAML (navsim's scorer defaults drifted between its dataclass and its YAML)."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from configs import build, compose
from data.sources.nuplan import NuplanSettings
from data.sources.nuscenes import SceneSettings
from foresight.commands import COMMANDS, Subcommand
from foresight.training import TrainerSettings
from planner.inference import InferenceSettings
from planner.train import TrainPlannerConfig
from sim_eval.agents.expert import ExpertConfig
from sim_eval.runner import RunnerConfig
from sim_eval.synth import Perturbation
from world_model.bench import BenchConfig
from world_model.evaluate import EvalWorldModelConfig
from world_model.gpt.config import GPTConfig
from world_model.schedule import WSDSchedule
from world_model.tokenizer.model import TokenizerConfig
from world_model.tokenizer.train import TrainTokenizerConfig
from world_model.tokens.tokenize import TokenizeConfig
from world_model.train_config import TrainWorldModelConfig

# Required (???) keys of each command, with stand-in values so that the config composes.
REQUIRED = {
    "data/nuscenes": ["dataroot=d", "out=o"], "data/nuplan": ["db=d", "sensor_root=s", "out=o"], "data/opendv": ["out=o"],
    "data/synth": ["out=o"], "data/tokenize": ["clips=c", "tokenizer=t", "out=o"], "train/tokenizer": ["clips=c", "out=o"],
    "train/world_model": ["out=o"], "train/planner": ["world_model=w", "tokenizer=t", "clips=c", "tokens=k", "out=o"],
    "eval/closed_loop": ["out=o"], "eval/world_model": ["checkpoint=w", "tokenizer=t", "clips=c", "out=o"],
    "eval/open_loop": ["checkpoint=p", "clips=c", "out=o"], "eval/ablation": ["checkpoint=p", "out=o"], "demo": ["out=o"],
    "viz/clip": ["path=p", "out=o"],
}
EXPERIMENTS = ("tiny", "S", "B", "L")


def typed_sections(name: str, cfg) -> list[object]:
    """The typed settings each command builds from its composed config (as its code builds them)."""
    if name == "train/tokenizer":
        return [TrainTokenizerConfig.from_config(cfg)]
    if name == "train/world_model":
        c = TrainWorldModelConfig.from_config(cfg)
        return [c, c.world_model.wsd()]
    if name == "train/planner":
        return [TrainPlannerConfig.from_config(cfg)]
    if name in ("eval/closed_loop", "eval/ablation"):
        return [build(RunnerConfig, cfg.runner, "runner"), build(ExpertConfig, cfg.baselines.expert, "baselines.expert")]
    if name == "serve":
        return [build(ExpertConfig, cfg.baselines.expert, "baselines.expert")]
    if name == "data/synth":
        return [build(Perturbation, cfg.perturb, "perturb")]
    if name == "data/tokenize":
        return [TokenizeConfig.from_mapping(cfg)]
    if name == "data/nuplan":
        return [NuplanSettings.from_cfg(cfg)]
    if name == "data/nuscenes":
        return [SceneSettings.from_cfg(cfg)]
    if name == "eval/world_model":
        return [EvalWorldModelConfig.from_mapping(cfg)]
    if name == "bench/world_model":
        return [BenchConfig.from_config(cfg)]
    return []


def dataclass_tree(cls: type, seen: set[type] | None = None) -> set[type]:
    """`cls` and every dataclass its fields are typed with, recursively."""
    seen = set() if seen is None else seen
    if cls in seen:
        return seen
    seen.add(cls)
    for hint in typing.get_type_hints(cls).values():
        for arg in (hint, *typing.get_args(hint)):
            if isinstance(arg, type) and dataclasses.is_dataclass(arg):
                dataclass_tree(arg, seen)
    return seen


def defaults_of(cls: type) -> list[str]:
    """Fields of `cls` with a default (the command-record field `raw` aside: it is the composed config)."""
    return [f.name for f in dataclasses.fields(cls) if f.name != "raw"
            and (f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)]


def commands() -> list[str]:
    names = []
    for entry in COMMANDS.values():
        names += [entry.config] if isinstance(entry, Subcommand) else [sub.config for sub in entry.values()]
    return names


@pytest.mark.parametrize("name", commands())
def test_every_command_builds_its_settings_from_yaml_without_dataclass_defaults(name):
    experiments = EXPERIMENTS if name.startswith("train/") or name in ("bench/world_model", "bench/planner") else (None,)
    classes: set[type] = set()
    for experiment in experiments:
        overrides = [*REQUIRED.get(name, []), *([f"experiment={experiment}"] if experiment else [])]
        for settings in typed_sections(name, compose(name, overrides)):
            classes |= dataclass_tree(type(settings))
    # Not settings: the model architectures, whose presets are the size registries (GPT_SIZES,
    # TOKENIZER_SIZES) that the profiles' `model:` sections override field by field.
    classes -= {GPTConfig, TokenizerConfig}
    assert {cls.__name__: defaults_of(cls) for cls in classes if defaults_of(cls)} == {}


def test_the_settings_classes_that_yaml_fills_are_all_covered():
    """Every settings section a command reads is checked above (a new one must be added there)."""
    covered = set()
    for name in commands():
        cfg = compose(name, [*REQUIRED.get(name, [])] + (["experiment=tiny"] if name.startswith("train/") else []))
        for settings in typed_sections(name, cfg):
            covered |= dataclass_tree(type(settings))
    for cls in (TrainerSettings, InferenceSettings, WSDSchedule, RunnerConfig, ExpertConfig, Perturbation, TokenizeConfig, NuplanSettings):
        assert cls in covered, cls.__name__
