"""The planner's `foresight` subcommands (see foresight/commands.py); each takes the composed Hydra config.

    foresight train planner world_model=WM tokenizer=TOK clips=CLIPS tokens=TOKENS out=DIR
    foresight train planner ... dagger.rounds=N   (then N DAgger rounds: foresight/dagger.py)
    foresight eval open_loop checkpoint=VAM_DIR clips=CLIPS out=DIR
    foresight bench planner [checkpoint=VAM_DIR]

Heavy modules are imported only when a command runs.
"""

from __future__ import annotations

from typing import Any, Mapping


def run_train_planner(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Train the action model on a frozen world model, export it to out/vam (planner/train.py); with
    dagger.rounds=N, then N DAgger rounds (foresight/dagger.py: out/dagger/rounds.json, the final planner
    out/dagger/round_NN/train/vam)."""
    from planner.train import run_train_planner as run

    return run(cfg)


def run_eval_open_loop(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """minADE/FDE, L2 at 1/2/3 s and collisions vs constant velocity and the ego MLP (planner/open_loop.py)."""
    from planner.open_loop import run_eval_open_loop as run

    return run(cfg)


def run_bench(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Planner latency as one JSON object (planner/bench.py)."""
    from planner.bench import run_bench as run

    return run(cfg)
