"""Composing configs/<name>.yaml with Hydra, outside of `@hydra.main` (no working-dir change, no logging setup)."""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent


def compose(name: str, overrides: Sequence[str] = ()) -> Any:
    """configs/<name>.yaml (e.g. "eval/closed_loop", "runner/default") composed with its defaults
    list and the Hydra `overrides`; returns the DictConfig."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return hydra_compose(config_name=name, overrides=list(overrides))


def plain(cfg: Any) -> Any:
    """A DictConfig / ListConfig as plain dicts and lists (interpolations resolved); anything else as is."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


@functools.lru_cache(maxsize=None)
def _defaults(name: str) -> dict[str, Any]:
    composed = plain(compose(name))
    if (CONFIG_DIR / f"{name}.yaml").read_text().startswith("# @package _global_"):
        return composed  # a command's config ("data/nuplan"): its keys are top-level
    # A file of a config group ("runner/default") composes under its group's package ("runner").
    for part in Path(name).parent.parts:
        composed = composed[part]
    return composed


def defaults(name: str) -> dict[str, Any]:
    """configs/<name>.yaml composed, as plain containers (a fresh copy: callers may change it): a
    command's config ("data/nuplan", "eval/closed_loop") with `???` keys left missing, or for a file
    of a config group ("runner/default", "planner_profile/tiny") the group's section itself, as a
    command that composes the group sees it."""
    return copy.deepcopy(_defaults(name))
