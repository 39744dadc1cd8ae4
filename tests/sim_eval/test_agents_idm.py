"""IDM agents: the model itself, free-road convergence, car following, red lights, the ego as leader."""

import dataclasses
import time

import numpy as np
import pytest

from contract.footprint import convex_overlap
from sim_eval.agents.idm import NUPLAN_IDM, find_path_leaders, idm_acceleration
from sim_eval.agents.traffic import TrafficSim
from sim_eval.agents.vehicle import VehicleAgent
from sim_eval.world.generator import generate_map, sample_junction_layout, sample_straight_layout, two_phase_cycles
from sim_eval.world.route import build_route
from sim_eval.world.state import EgoBox, box_corners_xy

P = NUPLAN_IDM


def _straight(limit: float = 50 / 3.6, length: float = 400.0):
    gm = generate_map(
        sample_straight_layout(
            np.random.default_rng(0), length_m=length, lanes_forward=1, lanes_backward=1, speed_limit_mps=limit
        )
    )
    return gm, build_route(gm.road_map, (gm.forward_lane_ids[0],), gm.lights)


def test_idm_formula_fixed_points():
    assert float(idm_acceleration(10.0, 10.0, np.inf, 0.0, P)) == pytest.approx(0.0)
    assert float(idm_acceleration(0.0, 10.0, np.inf, 0.0, P)) == pytest.approx(P.max_accel_mps2)
    v = 6.0  # equilibrium gap behind a leader at the same speed: s = (s0 + vT) / sqrt(1 - (v/v0)^4)
    s_eq = (P.min_gap_m + v * P.headway_s) / np.sqrt(1 - (v / 10.0) ** 4)
    assert float(idm_acceleration(v, 10.0, s_eq, v, P)) == pytest.approx(0.0, abs=1e-12)
    assert float(idm_acceleration(10.0, 10.0, 0.5, 0.0, P)) == -P.max_decel_mps2
    # closing in makes braking stronger
    assert float(idm_acceleration(8.0, 10.0, 20.0, 2.0, P)) < float(idm_acceleration(8.0, 10.0, 20.0, 8.0, P))


@pytest.mark.parametrize("limit, expected", [(50 / 3.6, 10.0), (25 / 3.6, 25 / 3.6)])
def test_lone_agent_converges_to_min_of_10_and_lane_limit(limit, expected):
    gm, route = _straight(limit, length=700.0)
    sim = TrafficSim([VehicleAgent(1, "idm", route=route, start_s_m=5.0, start_speed_mps=0.0)], lights=gm.lights)
    speeds = []
    for _ in range(400):
        speeds.append(float(sim.step().agents.speed_mps[0]))
    assert speeds[-1] == pytest.approx(expected, abs=0.05)
    assert max(speeds) <= expected + 1e-6
    assert np.all(np.diff(speeds) >= -1e-9)  # monotone from rest


def test_follower_stops_at_min_gap_behind_a_stopped_car_and_never_overlaps():
    gm, route = _straight()
    s_lead = 150.0
    xy, yaw = route.path.point_at(s_lead), float(route.path.heading_at(s_lead))
    leader = VehicleAgent(1, "static", pose_xyyaw=(float(xy[0]), float(xy[1]), yaw), length_m=4.6, width_m=1.9)
    follower = VehicleAgent(2, "idm", route=route, start_s_m=40.0, start_speed_mps=10.0, length_m=4.6, width_m=1.9)
    sim = TrafficSim([leader, follower], lights=gm.lights)
    gaps = []
    for _ in range(400):
        a = sim.step().agents
        corners = a.corners_xy()
        assert not convex_overlap(corners[0], corners[1])
        gaps.append((a.x_m[0] - 2.3) - (a.x_m[1] + 2.3))
    assert min(gaps) > 0.9
    assert gaps[-1] == pytest.approx(P.min_gap_m, abs=0.05)
    assert sim.state().agents.speed_mps[1] < 0.05


def test_agent_stops_at_red_stop_line_and_goes_on_green():
    green_at = 20.0
    main, cross = two_phase_cycles(main_green_s=40.0, cross_green_s=green_at, main_green_start_s=green_at)
    assert main.state_at(0.0) == "red"
    layout = sample_junction_layout(
        np.random.default_rng(2), kind="4way", approach_m=120.0, lanes_forward=1, lanes_backward=1
    )
    layout = dataclasses.replace(
        layout, junction=dataclasses.replace(layout.junction, main_cycle=main, cross_cycle=cross)
    )
    gm = generate_map(layout)
    lane = gm.forward_lane_ids[0]
    straight = next(c for c in gm.road_map.lanes[lane].successors if gm.road_map.lanes[c].turn == "straight")
    route = build_route(gm.road_map, (lane, straight, gm.road_map.lanes[straight].successors[0]), gm.lights)
    (stop,) = route.stops
    car = VehicleAgent(1, "idm", route=route, start_s_m=20.0, start_speed_mps=8.0, length_m=4.5)
    sim = TrafficSim([car], lights=gm.lights)
    front_at = {}
    while sim.time_s < green_at + 10.0:
        sim.step()
        front_at[round(sim.time_s, 1)] = sim._s[0] + 2.25
        if sim.time_s < green_at:
            assert front_at[round(sim.time_s, 1)] < stop.s_m  # never crosses on red
    waiting = front_at[round(green_at - 0.5, 1)]
    assert stop.s_m - waiting == pytest.approx(P.min_gap_m, abs=0.1)
    assert sim._v[0] > 3.0 and front_at[round(green_at + 10.0, 1)] > stop.s_m + 10.0


def test_ego_box_is_a_leader():
    gm, route = _straight()
    s_ego = 100.0
    xy, yaw = route.path.point_at(s_ego), float(route.path.heading_at(s_ego))
    ego = EgoBox(center_xy=(float(xy[0]), float(xy[1])), yaw_rad=yaw, speed_mps=0.0, length_m=5.2, width_m=2.3)
    sim = TrafficSim([VehicleAgent(1, "idm", route=route, start_s_m=30.0, start_speed_mps=8.0)], lights=gm.lights)
    for _ in range(300):
        sim.step(ego)
    gap = (s_ego - 2.6) - (sim._s[0] + 2.3)
    assert gap == pytest.approx(P.min_gap_m, abs=0.05)
    # without the ego the same agent drives on
    free = TrafficSim([VehicleAgent(1, "idm", route=route, start_s_m=30.0, start_speed_mps=8.0)], lights=gm.lights)
    for _ in range(300):
        free.step()
    assert free._s[0] > s_ego + 50.0


def test_path_leaders_ignore_objects_beside_and_behind():
    _, route = _straight()
    s = 50.0
    h = float(route.path.heading_at(s))
    normal = np.array([-np.sin(h), np.cos(h)])

    def box_at(ds, lateral, yaw=0.0):
        c = route.path.point_at(s + ds) + lateral * normal
        return box_corners_xy(c[None], np.array([h + yaw]), np.array([4.5]), np.array([1.9]))[0]

    corners = np.stack([box_at(20.0, 0.0), box_at(20.0, 3.5), box_at(-15.0, 0.0), box_at(12.0, 2.2, yaw=np.pi / 2)])
    vel = np.array([[3.0 * np.cos(h), 3.0 * np.sin(h)], [0, 0], [0, 0], [0, 0]])
    leaders = find_path_leaders(route.path, s, 4.5, 1.9, corners, vel, P)
    # in-lane car 20 m ahead and the crossing car whose length reaches into the path 12 m ahead
    np.testing.assert_allclose(np.sort(leaders.gap_m), [12.0 - 0.95 - 2.25, 20.0 - 2.25 - 2.25], atol=1e-6)
    assert sorted(np.round(leaders.leader_speed_mps, 6)) == [0.0, 3.0]


def test_agents_slow_down_before_a_tight_connector():
    gm = generate_map(
        sample_junction_layout(
            np.random.default_rng(6), kind="4way", signalized=False, lanes_forward=1, lanes_backward=1
        )
    )
    lane = gm.forward_lane_ids[0]
    right = next(c for c in gm.road_map.lanes[lane].successors if gm.road_map.lanes[c].turn == "right")
    conn = gm.road_map.lanes[right]
    route = build_route(gm.road_map, (lane, right, conn.successors[0]))
    sim = TrafficSim([VehicleAgent(1, "idm", route=route, start_s_m=10.0, start_speed_mps=10.0)])
    entry = route.lane_start_s_m[1]
    while sim._s[0] + 2.3 < entry:
        sim.step()
    assert conn.speed_limit_mps < 8.0
    assert sim._v[0] <= conn.speed_limit_mps + 0.3


def test_many_agents_step_quickly():
    gm = generate_map(
        sample_straight_layout(np.random.default_rng(3), length_m=600.0, lanes_forward=3, lanes_backward=2)
    )
    cars = []
    for k, lane in enumerate(gm.forward_lane_ids + gm.backward_lane_ids):
        route = build_route(gm.road_map, (lane,), gm.lights)
        cars += [
            VehicleAgent(10 * k + j, "idm", route=route, start_s_m=20.0 + 30.0 * j, start_speed_mps=8.0)
            for j in range(4)
        ]
    sim = TrafficSim(cars)
    t0 = time.perf_counter()
    for _ in range(50):
        state = sim.step()
    per_step = (time.perf_counter() - t0) / 50
    assert len(state.agents) == 20
    assert per_step < 0.05, per_step
