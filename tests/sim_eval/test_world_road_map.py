"""Lane geometry, drivable-area queries and lane-graph routing on hand-built and generated maps."""

import math

import numpy as np
import pytest

from sim_eval.metrics.map_query import MapQuery
from sim_eval.world.generator import generate_map, sample_junction_layout
from sim_eval.world.polyline import Polyline
from sim_eval.world.road_map import Lane, RoadMap


def _arc(radius: float, angle: float, n: int) -> np.ndarray:
    t = np.linspace(0, angle, n)
    return np.stack([radius * np.sin(t), radius - radius * np.cos(t)], axis=1)  # starts at 0 heading +x, turns left


def _two_way_straight() -> RoadMap:
    x = np.arange(0.0, 100.5, 1.0)
    fwd = Lane(
        0,
        np.stack([x, np.full_like(x, -1.75)], 1),
        3.5,
        10.0,
        left_opposite=1,
        left_marking="solid",
        right_marking="solid",
    )
    bwd = Lane(
        1,
        np.stack([x[::-1], np.full_like(x, 1.75)], 1),
        3.5,
        8.0,
        left_opposite=0,
        left_marking="solid",
        right_marking="solid",
    )
    return RoadMap([fwd, bwd])


def test_lane_projection_round_trip_on_a_curve():
    lane = Lane(0, _arc(30.0, math.pi / 2, 60), 3.5, 10.0)
    rng = np.random.default_rng(0)
    s = rng.uniform(0.0, lane.length_m, 50)
    lateral = rng.uniform(-1.5, 1.5, 50)
    h = lane.heading_at(s)
    pts = lane.point_at(s) + lateral[:, None] * np.stack([-np.sin(h), np.cos(h)], 1)
    s_back, lat_back = lane.project(pts)
    np.testing.assert_allclose(s_back, s, atol=0.02)
    np.testing.assert_allclose(lat_back, lateral, atol=0.02)
    # chord length of a quarter circle sampled finely is close to the arc length
    assert lane.length_m == pytest.approx(30.0 * math.pi / 2, rel=1e-3)
    # heading along a left arc increases from 0 to pi/2
    assert float(lane.heading_at(0.0)) == pytest.approx(0.0, abs=0.03)
    assert float(lane.heading_at(lane.length_m)) == pytest.approx(math.pi / 2, abs=0.03)


def test_projection_extrapolates_past_the_ends_and_is_signed():
    path = Polyline(np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]))
    proj = path.project(np.array([[-3.0, 1.0], [5.0, -2.0], [1.5, 0.5]]))
    np.testing.assert_allclose(proj.s_m, [-3.0, 5.0, 1.5])
    np.testing.assert_allclose(proj.lateral_m, [1.0, -2.0, 0.5])
    # a window restricts the segments used
    win = path.project(np.array([0.5, 0.2]), s_range_m=(1.2, 2.0))
    assert float(win.s_m) == pytest.approx(0.5)


def test_lane_validation_names_the_field():
    with pytest.raises(ValueError, match="sampled at <= 1 m"):
        Lane(3, np.array([[0.0, 0.0], [5.0, 0.0]]), 3.5, 10.0)
    with pytest.raises(ValueError, match="left_marking"):
        Lane(3, np.array([[0.0, 0.0], [0.5, 0.0]]), 3.5, 10.0, left_marking="double")
    with pytest.raises(ValueError, match="repeated point"):
        Lane(3, np.array([[0.0, 0.0], [0.0, 0.0], [0.5, 0.0]]), 3.5, 10.0)
    with pytest.raises(ValueError, match="unknown lanes"):
        RoadMap([Lane(0, np.array([[0.0, 0.0], [0.5, 0.0]]), 3.5, 10.0, successors=(7,))])


def test_drivable_area_queries_on_a_straight_road():
    rm = _two_way_straight()
    pts = np.array([[50.0, 0.0], [50.0, 3.4], [50.0, -3.6], [50.0, 5.5], [-2.0, 0.0]])
    np.testing.assert_array_equal(rm.is_drivable_xy(pts), [True, True, False, False, False])
    np.testing.assert_allclose(rm.distance_outside_drivable(pts), [0.0, 0.0, 0.1, 2.0, 2.0], atol=1e-9)
    headings = rm.lane_heading_at(np.array([[20.0, -1.0], [20.0, 1.0], [20.0, 9.0]]))
    assert headings[0] == pytest.approx(0.0)
    assert abs(headings[1]) == pytest.approx(math.pi)
    assert np.isnan(headings[2])
    np.testing.assert_allclose(rm.speed_limit_at(np.array([[20.0, -1.0], [20.0, 1.0]])), [10.0, 8.0])
    assert np.isnan(rm.speed_limit_at(np.array([[20.0, 30.0]]))[0])
    assert rm.lane_at(np.array([30.0, -1.0])) == 0
    assert rm.lane_at(np.array([30.0, -1.0]), heading_rad=math.pi) is None  # only lane 0 is there
    assert rm.lane_at(np.array([30.0, 0.2]), heading_rad=math.pi) == 1
    assert rm.lane_at(np.array([30.0, 6.0])) is None
    assert rm.lane_at(np.array([30.0, 6.0]), max_distance_m=3.0) == 1
    assert isinstance(rm, MapQuery)


def test_straddles_lanes():
    rm = _two_way_straight()
    inside = np.array([[52.0, -0.8], [48.0, -0.8], [48.0, -2.7], [52.0, -2.7]])
    across = inside + [0.0, 1.5]
    assert rm.straddles_lanes(np.stack([inside, across])).tolist() == [False, True]


def test_shortest_route_and_route_polyline_through_a_junction():
    gm = generate_map(sample_junction_layout(np.random.default_rng(4), kind="4way", lanes_forward=1, lanes_backward=1))
    rm, junction = gm.road_map, gm.junction
    start = gm.forward_lane_ids[0]
    for arm_name, turn, k in (("left", "left", 0), ("straight", "straight", 0), ("right", "right", -1)):
        goal = junction.arm(arm_name).outgoing_lane_ids[k]  # right turns end in the outermost lane
        route = rm.shortest_route(start, goal)
        assert len(route) == 3 and route[0] == start and route[-1] == goal
        assert rm.lanes[route[1]].is_junction and rm.lanes[route[1]].turn == turn
        poly = rm.route_polyline(route)
        length = sum(rm.lanes[i].length_m for i in route)
        assert Polyline(poly).length_m == pytest.approx(length, abs=1e-6)
        assert len(rm.route_speed_limits(route)) == len(poly)
    with pytest.raises(ValueError, match="not reachable"):
        rm.shortest_route(junction.arm("left").outgoing_lane_ids[0], start)  # the arm ends at the map edge
    with pytest.raises(ValueError, match="not connected"):
        rm.route_polyline((start, junction.arm("left").outgoing_lane_ids[0]))
