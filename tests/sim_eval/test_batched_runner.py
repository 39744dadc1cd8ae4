"""The batched closed loop: episodes in lockstep answered by one plan_batch call per tick give the
same runs as one at a time; a failing planner fails only its own episode; evaluate(batch_size=N)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from contract import Plan, Planner
from foresight.planners import planner_source
from planner.baselines.constant_velocity import ConstantVelocityPlanner
from sim_eval.evaluate import evaluate
from sim_eval.runner import RunnerConfig, run_episode, run_episodes_batched
from sim_eval.scenarios.suites import build_scenario

SMALL = RunnerConfig.default(image_height=32, image_width=64)
SCENARIOS = [("nominal", 0, 0), ("nominal", 3, 1), ("ncap_stationary", 0, 0), ("smoke", 0, 0)]


class _Counting(Planner):
    """Brakes gently; its class counts plan_batch calls; planner `fail_on` (an episode id) raises."""

    name = "counting"
    num_waypoints = 6
    plan_dt_s = 0.5
    batch_calls: list[int] = []

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on, self.episode = fail_on, ""

    def reset(self, episode):
        self.episode = episode.episode_id

    def plan(self, obs):
        if self.episode == self.fail_on and obs.time_s > 2.0:
            raise RuntimeError("this episode's planner breaks")
        speed = max(obs.speed_mps - 0.5, 0.0)
        return Plan(np.c_[speed * 0.5 * np.arange(1, 7), np.zeros(6)], 0.5)

    @classmethod
    def plan_batch(cls, planners, observations):
        cls.batch_calls.append(len(planners))
        return super().plan_batch(planners, observations)


def test_lockstep_episodes_equal_episodes_run_one_at_a_time():
    scenarios = [build_scenario(*key) for key in SCENARIOS]
    alone = [run_episode(s, ConstantVelocityPlanner(6, 0.5), SMALL, expert_progress_m=50.0) for s in scenarios]
    together = run_episodes_batched(scenarios, [ConstantVelocityPlanner(6, 0.5) for _ in scenarios], SMALL, [50.0] * len(scenarios))
    for a, b in zip(alone, together):
        assert a.episode_id == b.episode_id and a.score == b.score
        np.testing.assert_array_equal(a.log.ego_xyyaw, b.log.ego_xyyaw)
        assert len(a.plans_world) == len(b.plans_world) > 5


def test_one_plan_batch_call_per_tick_and_a_failing_planner_fails_only_its_episode():
    scenarios = [build_scenario(*key) for key in SCENARIOS]
    broken = "nominal/003/seed1"
    _Counting.batch_calls = []
    results = run_episodes_batched(scenarios, [_Counting(fail_on=broken) for _ in scenarios], SMALL, [50.0] * len(scenarios))
    reasons = {r.episode_id: r.score.failure_reason for r in results}
    assert "this episode's planner breaks" in reasons.pop(broken)
    assert set(reasons.values()) == {None}
    # Every tick asks all waiting episodes at once; they leave the batch when they end (the failed
    # call was retried episode by episode, which found whose planner failed).
    assert max(_Counting.batch_calls) == len(scenarios) and _Counting.batch_calls == sorted(_Counting.batch_calls, reverse=True)
    assert min(r.log.num_steps for r in results if r.episode_id != broken) > 50


def test_planners_of_another_class_or_count_are_refused():
    scenario = build_scenario("smoke", 0, 0)
    with pytest.raises(ValueError, match="2 planners for 1 scenarios"):
        run_episodes_batched([scenario], [_Counting(), _Counting()], SMALL)
    with pytest.raises(ValueError, match="one planner class"):
        run_episodes_batched([scenario, scenario], [_Counting(), ConstantVelocityPlanner(6, 0.5)], SMALL)


def test_evaluate_in_batches_gives_the_metrics_of_single_episodes(tmp_path):
    source = planner_source("constant_velocity")
    runs = {b: evaluate(source, "nominal", 5, 0, tmp_path / f"b{b}", SMALL, workers=1 if b == 1 else 2, batch_size=b) for b in (1, 3)}
    single, batched = (json.loads((tmp_path / f"b{b}" / "metrics.json").read_text()) for b in (1, 3))
    assert batched["batch_size"] == 3 and single["batch_size"] == 1
    for a, b in zip(single["episodes"], batched["episodes"]):
        assert {k: v for k, v in a.items() if "latency" not in k} == {k: v for k, v in b.items() if "latency" not in k}
    assert runs[1].metrics.score == runs[3].metrics.score


def test_bench_closed_loop_compares_the_two_runs_on_the_same_episodes(capsys):
    from foresight.cli import main

    assert main(["bench", "closed_loop", "planner=constant_velocity", "suite=smoke", "episodes=3", "workers=1", "batch_size=3"]) == 0
    printed = json.loads(capsys.readouterr().out)  # stdout holds the JSON alone: progress bars go to stderr
    assert printed["batched_ratio"] > 0 and printed["scores_identical"]
    from configs import compose
    from foresight.bench_closed_loop import run

    out = run(compose("bench/closed_loop", ["planner=constant_velocity", "suite=smoke", "episodes=3", "workers=1", "batch_size=3"]))
    assert out["batch_size"] == 3 and out["scores_identical"] and out["max_score_difference"] == 0.0
    assert out["episodes_per_s_batched"] > 0 and out["batched_ratio"] > 0 and out["cpu"]
