"""Scripted, static and pedestrian road users, and the joint simulation's bookkeeping."""

import numpy as np
import pytest

from sim_eval.agents.pedestrian import Pedestrian, pedestrian_states
from sim_eval.agents.traffic import TrafficSim
from sim_eval.agents.vehicle import SpeedProfile, VehicleAgent
from sim_eval.world.generator import generate_map, sample_straight_layout
from sim_eval.world.polyline import Polyline
from sim_eval.world.route import build_route


def _route(length=200.0):
    gm = generate_map(
        sample_straight_layout(np.random.default_rng(1), length_m=length, lanes_forward=1, lanes_backward=1)
    )
    return build_route(gm.road_map, (gm.forward_lane_ids[0],), gm.lights)


def test_speed_profile_distance_is_the_exact_integral():
    prof = SpeedProfile(np.array([0.0, 2.0, 4.0, 6.0]), np.array([8.0, 8.0, 0.0, 0.0]))
    # 8 m/s for 2 s, linear to 0 over 2 s (8 m), then standing; held speed beyond the knots
    np.testing.assert_allclose(prof.distance_at(np.array([1.0, 2.0, 3.0, 4.0, 10.0])), [8.0, 16.0, 22.0, 24.0, 24.0])
    np.testing.assert_allclose(prof.accel_at(np.array([1.0, 3.0, 5.0, 9.0])), [0.0, -4.0, 0.0, 0.0])
    assert float(SpeedProfile.constant(3.2).distance_at(2.5)) == pytest.approx(8.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        SpeedProfile(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        SpeedProfile(np.array([0.0]), np.array([-1.0]))


def test_scripted_and_static_agents_follow_their_script_and_ignore_others():
    route = _route()
    prof = SpeedProfile(np.array([0.0, 2.0, 4.0]), np.array([8.0, 8.0, 0.0]))
    scripted = VehicleAgent(1, "scripted", path=route.path, profile=prof, start_s_m=20.0)
    xy = route.path.point_at(30.0)
    static = VehicleAgent(
        2, "static", pose_xyyaw=(float(xy[0]), float(xy[1]), 0.0), kind="obstacle", length_m=1.0, width_m=1.0
    )
    sim = TrafficSim([scripted, static])
    for _ in range(30):
        state = sim.step()
    assert state.time_s == pytest.approx(3.0)
    x_expected = route.path.point_at(20.0 + 22.0)
    np.testing.assert_allclose(
        [state.agents.x_m[0], state.agents.y_m[0]], x_expected, atol=1e-9
    )  # drove through the obstacle
    assert state.agents.speed_mps[0] == pytest.approx(4.0)
    assert state.agents.accel_mps2[0] == pytest.approx(-4.0)
    assert state.agents.kind.tolist() == ["vehicle", "obstacle"]
    np.testing.assert_allclose([state.agents.x_m[1], state.agents.y_m[1]], xy)


def test_vehicles_leave_when_their_path_ends_and_ids_stay_known():
    route = _route(length=60.0)
    cars = [
        VehicleAgent(1, "idm", route=route, start_s_m=40.0, start_speed_mps=10.0),
        VehicleAgent(2, "idm", route=route, start_s_m=5.0, start_speed_mps=0.0),
    ]
    sim = TrafficSim(cars)
    seen = []
    for _ in range(30):
        seen.append(sim.step().agents.agent_id.tolist())
    assert seen[0] == [1, 2] and seen[-1] == [2]
    assert sim.agent_ids == (1, 2)


def test_pedestrian_waits_for_its_trigger_then_walks_and_stops_at_the_end():
    path = Polyline(np.array([[0.0, -5.0], [0.0, 5.0]]))
    ped = Pedestrian(7, path, speed_mps=1.25, start_time_s=2.0)
    assert ped.state_at(1.0) == (0.0, -5.0, pytest.approx(np.pi / 2), 0.0)
    x, y, yaw, v = ped.state_at(4.0)
    assert (x, y, v) == (0.0, pytest.approx(-2.5), 1.25)
    assert ped.state_at(20.0)[1:] == (5.0, pytest.approx(np.pi / 2), 0.0)
    assert pedestrian_states([ped, ped], 4.0).shape == (2, 4)
    sim = TrafficSim([], [ped])
    for _ in range(40):
        state = sim.step()
    assert state.agents.kind.tolist() == ["pedestrian"]
    assert state.agents.y_m[0] == pytest.approx(-2.5)


def test_simulation_is_deterministic_and_validates_ids():
    route = _route()
    cars = [
        VehicleAgent(i, "idm", route=route, start_s_m=10.0 + 25.0 * i, start_speed_mps=5.0, desired_speed_mps=4.0 + i)
        for i in range(4)
    ]
    runs = []
    for _ in range(2):
        sim = TrafficSim(cars)
        for _ in range(50):
            state = sim.step()
        runs.append(np.stack([state.agents.x_m, state.agents.y_m, state.agents.speed_mps]))
    np.testing.assert_array_equal(runs[0], runs[1])
    with pytest.raises(ValueError, match="duplicate agent ids"):
        TrafficSim([cars[0], cars[0]])
    with pytest.raises(ValueError, match="need a route"):
        VehicleAgent(9, "idm")
    with pytest.raises(ValueError, match="outside route"):
        VehicleAgent(9, "idm", route=route, start_s_m=-1.0)
