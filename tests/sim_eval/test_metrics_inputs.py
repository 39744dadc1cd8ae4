"""Inputs of the closed-loop metrics: footprints / SAT overlap, EpisodeLog validation, PolygonMapQuery."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import LineString, Polygon

from contract.footprint import FRONT_LEFT, FRONT_RIGHT, REAR_LEFT, box_corners, convex_overlap
from sim_eval.metrics import EpisodeLog, LaneSpec, MapQuery, NcapInfo, PolygonMapQuery


def test_box_corners_order_and_rotation():
    corners = box_corners(np.array([1.0, 2.0, math.pi / 2]), 4.0, 2.0)
    # Heading +y: the front is at y = 4, the left side at x = 0.
    assert corners[FRONT_LEFT] == pytest.approx([0.0, 4.0])
    assert corners[FRONT_RIGHT] == pytest.approx([2.0, 4.0])
    assert corners[REAR_LEFT] == pytest.approx([0.0, 0.0])


def test_convex_overlap_matches_shapely_on_random_boxes():
    rng = np.random.default_rng(0)
    n = 400
    a = np.column_stack([rng.uniform(-3, 3, (n, 2)), rng.uniform(-math.pi, math.pi, n)])
    b = np.column_stack([rng.uniform(-3, 3, (n, 2)), rng.uniform(-math.pi, math.pi, n)])
    corners_a = box_corners(a, rng.uniform(0.5, 5, n), rng.uniform(0.5, 2.5, n))
    corners_b = box_corners(b, rng.uniform(0.5, 5, n), rng.uniform(0.5, 2.5, n))
    ours = convex_overlap(corners_a, corners_b)
    truth = np.array([Polygon(pa).intersects(Polygon(pb)) for pa, pb in zip(corners_a, corners_b)])
    assert 0.2 < truth.mean() < 0.8  # both outcomes are exercised
    np.testing.assert_array_equal(ours, truth)
    segments = corners_a[:, [FRONT_LEFT, FRONT_RIGHT]]
    segment_truth = np.array([LineString(s).intersects(Polygon(pb)) for s, pb in zip(segments, corners_b)])
    np.testing.assert_array_equal(convex_overlap(segments, corners_b), segment_truth)


def test_convex_overlap_touching_counts_and_nan_does_not():
    left = box_corners(np.array([0.0, 0.0, 0.0]), 2.0, 2.0)
    right = box_corners(np.array([2.0, 0.0, 0.0]), 2.0, 2.0)
    assert convex_overlap(left, right)
    assert not convex_overlap(left, box_corners(np.array([2.01, 0.0, 0.0]), 2.0, 2.0))
    assert not convex_overlap(left, np.full((4, 2), np.nan))


def _log_kwargs(steps: int = 5, agents: int = 1) -> dict:
    t = np.arange(steps) * 0.1
    return dict(
        episode_id="e", time_s=t,
        ego_xyyaw=np.column_stack([t, np.zeros(steps), np.zeros(steps)]),
        ego_speed_mps=np.ones(steps), ego_accel_lon_mps2=np.zeros(steps), ego_accel_lat_mps2=np.zeros(steps),
        ego_yaw_rate_rps=np.zeros(steps), length_m=5.0, width_m=2.0, rear_axle_to_center_m=1.5,
        agent_xyyaw=np.zeros((steps, agents, 3)), agent_speed_mps=np.ones((steps, agents)),
        agent_velocity_xy=np.tile([1.0, 0.0], (steps, agents, 1)), agent_length_m=np.full(agents, 4.0),
        agent_width_m=np.full(agents, 2.0), agent_kind=["vehicle"] * agents,
        agent_valid=np.ones((steps, agents), bool), route_xy=[[0.0, 0.0], [10.0, 0.0]], expert_progress_m=1.0,
    )


def test_episode_log_accepts_valid_input_and_is_read_only():
    log = EpisodeLog(**_log_kwargs())
    assert log.num_steps == 5 and log.num_agents == 1 and log.dt_s == pytest.approx(0.1)
    assert log.ego_center_xyyaw[0] == pytest.approx([1.5, 0.0, 0.0])
    with pytest.raises(ValueError):
        log.ego_speed_mps[0] = 3.0


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("ego_xyyaw", np.zeros((4, 3)), "ego_xyyaw"),
        ("agent_velocity_xy", np.zeros((5, 2, 2)), "agent_velocity_xy"),
        ("ego_speed_mps", np.array([1.0, np.nan, 1.0, 1.0, 1.0]), "ego_speed_mps"),
        ("time_s", np.array([0.0, 0.1, 0.2, 0.4, 0.5]), "uniformly"),
        ("agent_kind", ["truck"], "agent_kind"),
        ("agent_speed_mps", np.full((5, 1), 3.0), "agent_speed_mps"),
        ("route_xy", [[0.0, 0.0]], "route_xy"),
        ("expert_progress_m", float("inf"), "expert_progress_m"),
        ("episode_id", "", "episode_id"),
    ],
)
def test_episode_log_rejects_bad_fields(field, value, message):
    kwargs = _log_kwargs()
    kwargs[field] = value
    with pytest.raises(ValueError, match=message):
        EpisodeLog(**kwargs)


def test_episode_log_allows_nan_for_invalid_agent_entries():
    kwargs = _log_kwargs()
    kwargs["agent_valid"] = np.array([[True], [True], [False], [False], [True]])
    kwargs["agent_xyyaw"] = kwargs["agent_xyyaw"].copy()
    kwargs["agent_xyyaw"][2:4] = np.nan
    EpisodeLog(**kwargs)
    kwargs["agent_valid"] = np.ones((5, 1), bool)
    with pytest.raises(ValueError, match="agent_xyyaw"):
        EpisodeLog(**kwargs)


def test_ncap_info_validation():
    with pytest.raises(ValueError, match="v_ref_mps"):
        NcapInfo(scenario_type="frontal", scenario_id="f0", v_ref_mps=0.0)


def test_from_states_derives_accelerations():
    t = np.arange(11) * 0.1
    speed = 10.0 - 2.0 * t
    yaw = 0.3 * t
    kwargs = _log_kwargs(steps=11, agents=0)
    log = EpisodeLog.from_states(
        episode_id="d", time_s=t, ego_xyyaw=np.column_stack([np.zeros(11), np.zeros(11), yaw]), ego_speed_mps=speed,
        length_m=5.0, width_m=2.0, rear_axle_to_center_m=1.5, agent_xyyaw=kwargs["agent_xyyaw"],
        agent_velocity_xy=kwargs["agent_velocity_xy"], agent_length_m=[], agent_width_m=[], agent_kind=[],
        agent_valid=kwargs["agent_valid"], route_xy=kwargs["route_xy"], expert_progress_m=1.0)
    assert log.ego_accel_lon_mps2 == pytest.approx(np.full(11, -2.0))
    assert log.ego_yaw_rate_rps == pytest.approx(np.full(11, 0.3))
    assert log.ego_accel_lat_mps2 == pytest.approx(speed * 0.3)


@pytest.fixture(scope="module")
def junction() -> PolygonMapQuery:
    """An eastbound lane (limit 10) and a northbound lane (limit unknown) crossing at the origin."""
    east = LaneSpec(np.array([[-50.0, 0.0], [50.0, 0.0]]), 4.0, 10.0)
    north = LaneSpec(np.array([[0.0, -50.0], [0.0, 0.0], [0.0, 50.0]]), 4.0)
    return PolygonMapQuery.from_lanes([east, north], shoulder_m=0.5)


def test_polygon_map_query_satisfies_protocol(junction):
    assert isinstance(junction, MapQuery)


def test_polygon_map_query_lookups(junction):
    points = np.array([[20.0, 0.5], [0.3, 30.0], [20.0, 10.0], [20.0, 2.2], [20.0, 3.5], [0.1, 0.3]])
    np.testing.assert_allclose(junction.distance_outside_drivable(points), [0, 0, 7.5, 0, 1.0, 0], atol=1e-9)
    heading = junction.lane_heading_at(points)
    assert heading[0] == pytest.approx(0.0) and heading[1] == pytest.approx(math.pi / 2)
    assert np.isnan(heading[2:5]).all()  # off-lane (2.2 m is on the shoulder)
    assert heading[5] == pytest.approx(math.pi / 2)  # nearest centreline wins in the junction
    limits = junction.speed_limit_at(points)
    assert limits[0] == 10.0 and np.isnan(limits[1]) and np.isnan(limits[2])


def test_polygon_map_query_straddles_lanes(junction):
    inside = box_corners(np.array([20.0, 0.0, 0.0]), 4.0, 2.0)
    across_edge = box_corners(np.array([20.0, 1.5, 0.0]), 4.0, 2.0)
    np.testing.assert_array_equal(junction.straddles_lanes(np.stack([inside, across_edge])), [False, True])
