"""The Hydra config tree of the `foresight` commands (the YAML files beside this module), and how
Python code reads it.

The YAML files are the one place where defaults live: the dataclasses that type and check the
settings have no defaults of their own. Code that runs outside a command (a notebook, a test, the
simulator computing its expert reference) reads the same YAML through `defaults`.

    from configs import build, defaults
    runner = build(RunnerConfig, defaults("runner/default"), "runner")
"""

from configs.compose import CONFIG_DIR, compose, defaults, plain
from configs.typed import build

__all__ = ["CONFIG_DIR", "build", "compose", "defaults", "plain"]
