"""`foresight bench planner` prints one JSON object of latencies, with or without a checkpoint."""

from __future__ import annotations

import json

import pytest

from foresight.cli import main

KEYS = {"encode_ms", "context_ms", "flow_ms", "total_ms", "flow_ms_1step", "total_ms_1step", "ratio_10step_vs_1step"}


def bench_json(capsys, *args: str) -> dict:
    assert main(["bench", "planner", "rounds=1", "observations=4", "threads=1", *args]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    return json.loads(lines[0])


def test_bench_without_a_checkpoint_times_a_random_model_of_the_profile(capsys):
    result = bench_json(capsys)
    assert KEYS <= set(result) and all(result[k] > 0 for k in KEYS)
    assert result["checkpoint"] is None and result["world_model_params"] > 3_000_000  # the tiny profile's GPT (4 x 256)
    assert result["n_timed_calls"] == 2 * 1 and result["torch_threads"] == 1
    assert result["plans_per_s_batch1"] > 0 and result["plans_per_s_batch8"] > 0
    assert result["plans_per_s_batch8"] == pytest.approx(8e3 / result["plan_batch_ms_batch8"])


def test_bench_with_a_checkpoint(speed_keeping_planner, capsys):
    result = bench_json(capsys, f"checkpoint={speed_keeping_planner}")
    assert KEYS <= set(result) and result["checkpoint"] == str(speed_keeping_planner)
    assert result["flow_ms"] > result["flow_ms_1step"]  # 10 Euler steps cost more than 1
