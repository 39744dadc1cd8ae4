"""The dynamics benchmark runs the closed ego loop and reports rates."""

import math

import pytest

from sim_eval.dynamics.bench import benchmark_dynamics


def test_benchmark_dynamics_reports_rates_of_a_sane_loop():
    result = benchmark_dynamics(n_steps=50)
    for key in ("bicycle_steps_per_s", "loop_steps_per_s", "tracker_steps_per_s", "reference_builds_per_s"):
        assert result[key] > 0
    # The loop follows a 10 m/s plan on a 50 m radius for 5 s: a 50 m arc, whose chord is 2 R sin(0.5 rad).
    assert result["final_speed_mps"] == pytest.approx(10.0, abs=0.1)
    assert result["final_distance_from_start_m"] == pytest.approx(2 * 50.0 * math.sin(0.5), abs=1.0)
    with pytest.raises(ValueError, match="n_steps"):
        benchmark_dynamics(n_steps=1)
