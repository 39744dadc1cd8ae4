"""Scenario suites: reproducibility, seed variation, NCAP jitter and set-up invariants."""

import numpy as np
import pytest

from contract.footprint import convex_overlap
from sim_eval.scenarios import build_scenario, suite_names, suite_size
from sim_eval.scenarios.ncap import FRONTAL_ACTOR_SPEED_MPS, NCAP_JITTER, SIDE_ACTOR_SPEED_MPS
from sim_eval.scenarios.nominal import NOMINAL_VARIANTS
from sim_eval.world.polyline import wrap_angle
from sim_eval.world.state import box_corners_xy

ALL = [(suite, i) for suite in suite_names() for i in range(suite_size(suite))]


def _fingerprint(sc) -> tuple:
    state = sc.initial_state()
    lanes = sc.road_map.lanes
    return (
        sc.name,
        sc.ego_start,
        sc.ego_route.lane_ids,
        round(sc.duration_s, 9),
        tuple(np.round(sc.ego_route.polyline_xy[::25].ravel(), 9)),
        tuple(np.round(np.concatenate([state.agents.x_m, state.agents.y_m, state.agents.speed_mps]), 9)),
        tuple(lane.centerline_xy.shape for lane in lanes.values()),
        sc.ncap,
    )


def test_suites_exist_with_sizes_and_bad_requests_fail():
    assert {"smoke", "nominal", "ncap_stationary", "ncap_frontal", "ncap_side"} <= set(suite_names())
    assert suite_size("nominal") == len(NOMINAL_VARIANTS) == 9
    assert (suite_size("ncap_stationary"), suite_size("ncap_frontal"), suite_size("ncap_side")) == (10, 5, 5)
    with pytest.raises(ValueError, match="unknown scenario suite"):
        build_scenario("nope", 0, 0)
    with pytest.raises(ValueError, match="out of range"):
        build_scenario("nominal", 9, 0)
    with pytest.raises(ValueError, match="seed"):
        build_scenario("smoke", 0, -1)


@pytest.mark.parametrize("suite, index", ALL)
def test_same_request_same_scenario_and_seeds_differ(suite, index):
    a, b = build_scenario(suite, index, 3), build_scenario(suite, index, 3)
    assert _fingerprint(a) == _fingerprint(b)
    c = build_scenario(suite, index, 4)
    assert _fingerprint(a) != _fingerprint(c)
    assert (a.suite, a.index, a.seed) == (suite, index, 3)


@pytest.mark.parametrize("suite, index", ALL)
def test_set_up_invariants(suite, index):
    sc = build_scenario(suite, index, 0)
    rm, route, ego = sc.road_map, sc.ego_route, sc.ego_start
    # the ego starts on its route's first lane, aligned with it, within the limit
    lane0 = rm.lanes[route.lane_ids[0]]
    s, lat = lane0.project(np.array([ego.x_m, ego.y_m]))
    assert abs(lat) < 1e-6 and abs(float(wrap_angle(lane0.heading_at(s) - ego.yaw_rad))) < 1e-6
    assert 0.0 < ego.speed_mps <= lane0.speed_limit_mps + 1e-9
    # enough route to drive at the limit for the whole duration
    assert route.length_m - sc.ego_start_s_m >= lane0.speed_limit_mps * sc.duration_s
    # nobody overlaps at t = 0 and the ego box is on the road
    state = sc.initial_state()
    ego_corners = sc.ego_box_at_start().corners_xy()
    assert rm.distance_outside_drivable(ego_corners).max() < 1e-6
    corners = state.agents.corners_xy()
    for i in range(len(corners)):
        assert not convex_overlap(ego_corners, corners[i]), state.agents.agent_id[i]
        for j in range(i):
            assert not convex_overlap(corners[i], corners[j])
    assert sc.warmup_steps == 2


@pytest.mark.parametrize("variant", NOMINAL_VARIANTS)
def test_nominal_variants_test_what_they_say(variant):
    index = NOMINAL_VARIANTS.index(variant)
    for seed in range(3):
        sc = build_scenario("nominal", index, seed)
        lanes = sc.road_map.lanes
        turns = [lanes[i].turn for i in sc.ego_route.lane_ids if lanes[i].is_junction]
        heading_change = float(
            wrap_angle(sc.ego_route.path.heading_at(sc.ego_route.length_m) - sc.ego_route.path.heading_at(0.0))
        )
        if variant.startswith("junction"):
            assert turns == [variant.split("_")[1]]
            light = sc.lights.stop_line_for_lane(sc.ego_route.lane_ids[0])[0]
            assert all(sc.lights.light(light).state_at(t) == "green" for t in np.arange(0.0, sc.duration_s, 0.5))
        elif variant == "red_light":
            assert turns == ["straight"]
            light = sc.lights.light(sc.ego_route.stops[0].light_id)
            assert light.state_at(0.0) == "red"
            assert any(light.state_at(t) == "green" for t in np.arange(0.0, sc.duration_s - 5.0, 0.5))
        elif variant == "curve_left":
            assert heading_change > np.deg2rad(35)
        elif variant == "curve_right":
            assert heading_change < -np.deg2rad(35)
        if variant in ("follow_lead", "stop_and_go"):
            lead = sc.vehicles[0]
            assert lead.behavior == ("idm" if variant == "follow_lead" else "scripted")
            assert lead.motion_path is sc.ego_route.path


@pytest.mark.parametrize("kind", ["stationary", "frontal", "side"])
def test_ncap_jitter_ranges_and_reference_speed(kind):
    suite = f"ncap_{kind}"
    (lon_lo, lon_hi), (lat_lo, lat_hi), (yaw_lo, yaw_hi) = NCAP_JITTER[kind]
    signs = set()
    for index in range(suite_size(suite)):
        base_map = None
        for seed in range(6):
            sc = build_scenario(suite, index, seed)
            info = sc.ncap
            assert info.kind == kind
            assert lon_lo <= abs(info.jitter_lon_m) <= lon_hi
            assert lat_lo <= abs(info.jitter_lat_m) <= lat_hi
            assert yaw_lo <= abs(info.jitter_yaw_rad) <= yaw_hi
            signs.add((np.sign(info.jitter_lon_m), np.sign(info.jitter_lat_m)))
            assert 7.0 <= sc.duration_s <= 12.0
            assert 0.0 < info.no_reaction_impact_time_s < sc.duration_s
            assert info.v_ref_mps > 0.5
            assert info.ego_reference_speed_mps == sc.ego_start.speed_mps
            # the base scene depends on the index only
            lanes = {k: v.centerline_xy.tobytes() for k, v in sc.road_map.lanes.items()}
            base_map = base_map or lanes
            assert lanes == base_map
            actor = next(v for v in sc.vehicles if v.agent_id == info.actor_id)
            path = sc.ego_route.path
            if kind == "stationary":
                x, y, yaw = actor.pose_xyyaw
                s, lat = path.project(np.array([x, y])).s_m, path.project(np.array([x, y])).lateral_m
                assert float(lat) == pytest.approx(info.jitter_lat_m, abs=1e-6)
                assert float(wrap_angle(yaw - path.heading_at(s))) == pytest.approx(info.jitter_yaw_rad, abs=1e-6)
                # an ego that brakes at 4 m/s^2 after the warm-up plus 0.5 s stops in time
                gap = path.project(_corners(actor)).s_m.min()
                front = sc.ego_start_s_m + sc.ego_vehicle.rear_axle_to_front_m
                v = sc.ego_start.speed_mps
                assert gap - front > v * (0.5 * sc.warmup_steps + 0.5) + v**2 / (2 * 4.0)
            else:
                assert actor.behavior == "scripted"
                speed = FRONTAL_ACTOR_SPEED_MPS if kind == "frontal" else SIDE_ACTOR_SPEED_MPS
                assert float(actor.profile.speed_at(0.0)) == speed
                far = actor.path.point_at(actor.path.length_m - 1.0 if kind == "side" else actor.start_s_m)
                assert float(path.project(far).lateral_m) == pytest.approx(info.jitter_lat_m, abs=1e-6)
    assert len(signs) >= 3  # both signs of the jitter occur


def _corners(actor) -> np.ndarray:
    x, y, yaw = actor.pose_xyyaw
    return box_corners_xy(np.array([[x, y]]), np.array([yaw]), np.array([actor.length_m]), np.array([actor.width_m]))[0]
