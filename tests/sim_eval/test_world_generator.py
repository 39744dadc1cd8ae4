"""Procedural maps: determinism, curve radii, junction connectivity and geometry, drivable area, speed."""

import time

import numpy as np
import pytest
from shapely.geometry import Polygon

from sim_eval.world.generator import (
    CURVE_RADIUS_RANGE_M,
    JunctionLayout,
    MapLayout,
    RoadPiece,
    connector_path,
    generate_map,
    generate_random_map,
    sample_curve_layout,
    sample_junction_layout,
)
from sim_eval.world.polyline import Polyline, wrap_angle

_TARGETS = {"straight": 2, "left": 3, "right": 1}  # arm-code offset reached by each turn
_CODES = {"straight": 0, "left": 1, "approach": 2, "right": 3}


def _circumradius(pts: np.ndarray) -> np.ndarray:
    a, b, c = pts[:-2], pts[1:-1], pts[2:]
    ab, bc, ca = (np.linalg.norm(u, axis=1) for u in (b - a, c - b, a - c))
    cross = np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
    with np.errstate(divide="ignore"):
        return ab * bc * ca / (2.0 * cross)


def test_same_seed_same_map_and_seeds_differ():
    a = generate_random_map(np.random.default_rng(11))
    b = generate_random_map(np.random.default_rng(11))
    c = generate_random_map(np.random.default_rng(12))
    assert a.road_map.lanes.keys() == b.road_map.lanes.keys()
    for lane_id, lane in a.road_map.lanes.items():
        np.testing.assert_array_equal(lane.centerline_xy, b.road_map.lanes[lane_id].centerline_xy)
        assert lane.successors == b.road_map.lanes[lane_id].successors
    assert a.layout == b.layout
    assert a.layout != c.layout


@pytest.mark.parametrize("direction", ["left", "right"])
def test_every_lane_radius_on_curves_is_within_25_to_60_m(direction):
    seen_curved = 0
    for seed in range(12):
        gm = generate_map(sample_curve_layout(np.random.default_rng(seed), direction))
        for lane in gm.road_map.lanes.values():
            radius = _circumradius(lane.centerline_xy)
            bent = np.isfinite(radius) & (radius < 1e4)
            curved = radius[1:-1][bent[:-2] & bent[1:-1] & bent[2:]]  # skip triples spanning a straight/arc joint
            assert len(curved) > 10
            seen_curved += 1
            assert curved.min() >= CURVE_RADIUS_RANGE_M[0] - 0.05
            assert curved.max() <= CURVE_RADIUS_RANGE_M[1] + 0.05
            # the lane turns the way the layout says
            turn = float(wrap_angle(lane.heading_at(lane.length_m) - lane.heading_at(0.0)))
            backward = lane.lane_id in gm.backward_lane_ids
            assert (turn > 0) == ((direction == "left") != backward)
    assert seen_curved >= 24


@pytest.mark.parametrize("kind", ["4way", "T"])
def test_junctions_connect_every_arm_in_every_allowed_direction(kind):
    for seed in range(8):
        gm = generate_map(sample_junction_layout(np.random.default_rng(seed), kind=kind))
        rm, junction = gm.road_map, gm.junction
        present = {_CODES[a.name] for a in junction.arms}
        assert len(present) == (4 if kind == "4way" else 3)
        for arm in junction.arms:
            code = _CODES[arm.name]
            expected = {turn for turn, off in _TARGETS.items() if (code + off) % 4 in present}
            turns = set()
            for lane_id in arm.incoming_lane_ids:
                succ = rm.lanes[lane_id].successors
                assert succ, f"incoming lane {lane_id} is a dead end"
                for conn_id in succ:
                    conn = rm.lanes[conn_id]
                    assert conn.is_junction and conn.turn in _TARGETS
                    turns.add(conn.turn)
                    (out_id,) = conn.successors
                    target_arm = next(a for a in junction.arms if out_id in a.outgoing_lane_ids)
                    assert (code + _TARGETS[conn.turn]) % 4 == _CODES[target_arm.name]
            assert turns == expected, (seed, arm.name)


def test_connectors_are_smooth_and_join_their_lanes_exactly():
    gm = generate_map(sample_junction_layout(np.random.default_rng(3), kind="4way", lanes_forward=3, lanes_backward=2))
    rm = gm.road_map
    for conn_id in gm.junction.connector_ids:
        conn = rm.lanes[conn_id]
        (src,), (dst,) = conn.predecessors, conn.successors
        src_lane, dst_lane = rm.lanes[src], rm.lanes[dst]
        np.testing.assert_array_equal(conn.centerline_xy[0], src_lane.centerline_xy[-1])
        np.testing.assert_array_equal(conn.centerline_xy[-1], dst_lane.centerline_xy[0])
        assert abs(float(wrap_angle(conn.heading_at(0.0) - src_lane.heading_at(src_lane.length_m)))) < 0.05
        assert abs(float(wrap_angle(conn.heading_at(conn.length_m) - dst_lane.heading_at(0.0)))) < 0.05
        radius = _circumradius(conn.centerline_xy)
        assert np.nanmin(radius) > 4.0  # a drivable turn for the ego (min radius ~1.8 m at full lock)
        assert conn.speed_limit_mps <= src_lane.speed_limit_mps


def test_connector_path_is_an_exact_arc_for_a_symmetric_turn():
    pts, radius = connector_path(np.array([0.0, 0.0]), 0.0, np.array([10.0, 10.0]), np.pi / 2)
    assert radius == pytest.approx(10.0)
    np.testing.assert_allclose(np.hypot(pts[:, 0], pts[:, 1] - 10.0), 10.0, atol=1e-9)
    with pytest.raises(ValueError, match="single turn"):
        connector_path(np.array([0.0, 0.0]), 0.0, np.array([-10.0, 10.0]), np.pi / 2)


def test_drivable_area_covers_lanes_and_excludes_sidewalks():
    for seed in range(10):
        gm = generate_random_map(np.random.default_rng(100 + seed))
        rm = gm.road_map
        assert rm.drivable_area.geom_type == "Polygon" and len(rm.drivable_area.interiors) == 0
        for lane in rm.lanes.values():
            assert rm.is_drivable_xy(lane.centerline_xy[1:-1]).all()  # the ends may lie on the map edge
            assert rm.distance_outside_drivable(lane.boundary_xy("right")).max() < 1e-6
        for surface in rm.surfaces:
            if surface.kind == "sidewalk":
                inner = Polygon(surface.polygon_xy).representative_point()
                assert not rm.is_drivable_xy(np.array([inner.x, inner.y]))[0]


def test_signalised_junction_has_stop_lines_and_no_conflicting_greens():
    gm = generate_map(sample_junction_layout(np.random.default_rng(5), kind="4way", main_green_start_s=2.0))
    rm, lights = gm.road_map, gm.lights
    incoming = [lane for arm in gm.junction.arms for lane in arm.incoming_lane_ids]
    assert sorted(lane for lt in lights.lights for lane in lt.controlled_lanes) == sorted(incoming)
    for lt in lights.lights:
        for stop in lt.stop_lines:
            lane = rm.lanes[stop.lane_id]
            assert stop.s_m == pytest.approx(lane.length_m, abs=1e-6)
            np.testing.assert_allclose(stop.center_xy, lane.centerline_xy[-1])
    main_light = lights.stop_line_for_lane(gm.forward_lane_ids[0])[0]
    assert lights.light(main_light).state_at(2.0) == "green"
    assert lights.light(main_light).state_at(1.9) == "red"
    period = lights.lights[0].cycle.period_s
    for t in np.arange(0.0, period, 0.1):
        states = lights.states_at(float(t))
        main_green = any(
            states[lt.light_id] != "red" for lt in lights.lights if lt.cycle == lights.light(main_light).cycle
        )
        cross_green = any(
            states[lt.light_id] != "red" for lt in lights.lights if lt.cycle != lights.light(main_light).cycle
        )
        assert not (main_green and cross_green), t


def test_layout_validation():
    with pytest.raises(ValueError, match="too tight"):
        MapLayout(
            pieces=(RoadPiece(20.0, 1 / 8.0),),
            lanes_forward=2,
            lanes_backward=2,
            lane_width_m=3.5,
            speed_limit_mps=10.0,
        )
    with pytest.raises(ValueError, match="missing_arm"):
        JunctionLayout(kind="T", arm_length_m=50.0)
    with pytest.raises(ValueError, match="length_m"):
        RoadPiece(0.0)


def test_map_build_is_fast():
    layouts = [
        sample_junction_layout(np.random.default_rng(s), kind="4way", lanes_forward=3, lanes_backward=3)
        for s in range(3)
    ]
    layouts += [sample_curve_layout(np.random.default_rng(s), "left") for s in range(3)]
    times = []
    for layout in layouts:
        t0 = time.perf_counter()
        gm = generate_map(layout)
        times.append(time.perf_counter() - t0)
        assert Polyline(gm.road_map.lanes[gm.forward_lane_ids[0]].centerline_xy).length_m > 50
    assert np.median(times) < 0.05, times
