"""Light cycles: state at time t, offsets, next change, two-phase timing."""

import numpy as np
import pytest

from sim_eval.world.generator import two_phase_cycles
from sim_eval.world.traffic_light import LightCycle, StopLine, TrafficLight, TrafficLights


def test_cycle_states_and_offset():
    cycle = LightCycle(green_s=10.0, yellow_s=3.0, red_s=7.0, offset_s=5.0)
    assert cycle.period_s == 20.0
    expected = {
        5.0: "green",
        14.9: "green",
        15.0: "yellow",
        17.9: "yellow",
        18.0: "red",
        24.9: "red",
        25.0: "green",
        4.9: "red",
    }
    for t, state in expected.items():
        assert cycle.state_at(t) == state, t
    assert cycle.next_change_s(6.0) == pytest.approx(15.0)
    assert cycle.next_change_s(16.0) == pytest.approx(18.0)
    assert cycle.next_change_s(19.0) == pytest.approx(25.0)


def test_two_phase_cycles_alternate_with_all_red():
    main, cross = two_phase_cycles(
        main_green_s=12.0, cross_green_s=8.0, main_green_start_s=-3.0, yellow_s=3.0, all_red_s=1.5
    )
    assert main.period_s == cross.period_s == pytest.approx(29.0)
    assert main.state_at(-3.0) == "green" and main.state_at(-3.1) == "red"
    assert cross.state_at(-3.0 + 12.0 + 3.0 + 1.5) == "green"
    times = np.arange(0.0, 29.0, 0.05)
    main_go = np.array([main.state_at(t) != "red" for t in times])
    cross_go = np.array([cross.state_at(t) != "red" for t in times])
    assert not (main_go & cross_go).any()
    assert (~main_go & ~cross_go).mean() == pytest.approx(3.0 / 29.0, abs=0.01)  # two all-red gaps


def test_traffic_lights_validation_and_lookup():
    stop = StopLine(lane_id=4, s_m=20.0, center_xy=(20.0, -1.75), yaw_rad=0.0, width_m=3.5)
    light = TrafficLight(
        0, LightCycle(10.0, 3.0, 10.0), (stop,), head_xyz=(40.0, -1.75, 5.0), head_facing_yaw_rad=np.pi
    )
    lights = TrafficLights((light,))
    assert lights.stop_line_for_lane(4) == (0, stop)
    assert lights.stop_line_for_lane(5) is None
    assert lights.states_at(11.0) == {0: "yellow"}
    with pytest.raises(ValueError, match="more than one light"):
        TrafficLights((light, TrafficLight(1, LightCycle(1.0, 1.0, 1.0), (stop,), (0.0, 0.0, 5.0), 0.0)))
    with pytest.raises(ValueError, match="controls no lanes"):
        TrafficLight(2, LightCycle(1.0, 1.0, 1.0), (), (0.0, 0.0, 5.0), 0.0)
    with pytest.raises(ValueError, match="LightCycle"):
        LightCycle(-1.0, 1.0, 1.0)
