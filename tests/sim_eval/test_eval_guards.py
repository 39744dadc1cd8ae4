"""An evaluation refuses what it cannot honour before any episode runs (bad numbers, an out dir
holding another run, an unwritable out dir), and a planner that never returns cannot hang it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from foresight.cli import main
from sim_eval.runner import RunnerConfig

EVAL = ["eval", "closed_loop", "planner=constant_velocity", "suite=smoke", "workers=1", "runner.image_height=32", "runner.image_width=64"]


@pytest.mark.parametrize(
    "override,named",
    [("episodes=0", "episodes must be an integer >= 1"), ("episodes=-3", "episodes must be an integer >= 1"), ("seed=nan", "seed must be an integer"),
     ("workers=0", "workers must be an integer >= 1"), ("videos=-1", "videos must be an integer >= 0"), ("runner.plan_timeout_s=nan", "runner.plan_timeout_s"),
     ("runner.plan_timeout_s=inf", "runner.plan_timeout_s"), ("runner.planner_period_s=-0.5", "runner.planner_period_s"),
     ("runner.image_height=nan", "runner.image_height must be an integer")],
)
def test_bad_numbers_are_refused_with_the_key_named_before_any_work(tmp_path, capsys, override, named):
    assert main([*EVAL, "episodes=1", f"out={tmp_path / 'run'}", override]) != 0
    assert named in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing was started


def test_an_out_dir_holding_another_run_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*EVAL, "episodes=1", "videos=1", f"out={out}"]) == 0
    first = (out / "metrics.json").read_text()
    assert (out / "videos").is_dir()
    assert main([*EVAL, "episodes=2", "videos=0", f"out={out}"]) != 0
    err = capsys.readouterr().err
    assert "already holds the results of another run" in err and "overwrite=true" in err
    assert (out / "metrics.json").read_text() == first  # untouched
    assert main([*EVAL, "episodes=2", "videos=0", f"out={out}", "overwrite=true"]) == 0
    assert json.loads((out / "metrics.json").read_text())["num_episodes"] == 2
    assert not (out / "videos").exists()  # the first run's videos do not stay beside the new numbers


def test_an_unwritable_out_dir_is_found_before_the_episodes_run(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")

    def no_episodes(*args, **kwargs):
        raise AssertionError("episodes ran although out= cannot be written")

    monkeypatch.setattr("foresight.closed_loop.evaluate", no_episodes)
    assert main([*EVAL, "episodes=50", f"out={blocker / 'run'}"]) != 0
    assert "cannot be a directory" in capsys.readouterr().err  # refused up front, not after 50 episodes


def test_runner_config_refuses_non_integer_sizes():
    with pytest.raises(ValueError, match="runner.n_frames must be an integer"):
        RunnerConfig.default(n_frames=2.5)


HUNG_PLANNER = textwrap.dedent(
    """
    import threading
    import numpy as np
    from contract import Plan, Planner
    from sim_eval.runner import RunnerConfig, run_episode
    from sim_eval.scenarios.suites import build_scenario

    class Hung(Planner):
        name, num_waypoints, plan_dt_s = "hung", 6, 0.5
        def reset(self, episode):
            pass
        def plan(self, obs):
            threading.Event().wait()  # never returns

    cfg = RunnerConfig.default(plan_timeout_s=0.3, image_height=32, image_width=64)
    result = run_episode(build_scenario("smoke", 0, 0), Hung(), cfg, expert_progress_m=50.0)
    print("FAILED:", result.score.failure_reason)
    """
)


def test_a_planner_that_never_returns_is_abandoned_and_the_process_exits():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", HUNG_PLANNER], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "FAILED: planner timed out" in done.stdout
