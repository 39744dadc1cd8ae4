"""World -> RenderScene: markings, ground, boxes and light heads."""

import dataclasses

import numpy as np
import pytest

from sim_eval.render.scene import RenderScene
from sim_eval.world.generator import generate_map, sample_junction_layout, sample_straight_layout
from sim_eval.world.state import AgentArrays, WorldState
from sim_eval.world.to_render import DASH_M, WHITE, YELLOW, SceneConverter, render_scene


def _agents() -> AgentArrays:
    return AgentArrays(
        agent_id=np.array([3, 4, 5, 6]),
        kind=np.array(["vehicle", "vehicle", "pedestrian", "obstacle"]),
        x_m=np.array([10.0, 20.0, 30.0, 40.0]),
        y_m=np.array([-1.7, -1.7, 4.0, -1.0]),
        yaw_rad=np.zeros(4),
        speed_mps=np.array([5.0, 5.0, 1.3, 0.0]),
        accel_mps2=np.array([-2.0, 0.8, 0.0, 0.0]),
        length_m=np.array([4.5, 4.5, 0.6, 1.0]),
        width_m=np.array([1.9, 1.9, 0.6, 1.0]),
        height_m=np.array([1.5, 1.5, 1.75, 0.8]),
    )


def test_markings_of_a_three_plus_two_lane_road():
    gm = generate_map(
        sample_straight_layout(np.random.default_rng(0), length_m=120.0, lanes_forward=3, lanes_backward=2)
    )
    scene = render_scene(gm.road_map, AgentArrays.empty(), {}, (5.0, -1.0, 0.0))
    assert isinstance(scene, RenderScene)
    dashed = [m for m in scene.markings if m.dash_m is not None]
    solid_white = [m for m in scene.markings if m.dash_m is None and m.color == WHITE]
    yellow = [m for m in scene.markings if m.color == YELLOW]
    assert len(dashed) == (3 - 1) + (2 - 1)
    assert all(m.dash_m == DASH_M == (3.0, 6.0) and m.color == WHITE for m in dashed)
    assert len(yellow) == 1 and yellow[0].dash_m is None
    assert len(solid_white) == 2
    # the centre line runs along the reference line (y = 0); dashed lines lie between lane centres
    np.testing.assert_allclose(yellow[0].polyline_xy[:, 1], 0.0, atol=1e-9)
    w = gm.layout.lane_width_m
    lane_lines = sorted(float(np.median(m.polyline_xy[:, 1])) for m in dashed)
    np.testing.assert_allclose(lane_lines, [-2 * w, -w, w], atol=1e-9)
    kinds = [g.kind for g in scene.ground]
    assert kinds.count("road") == 1 and kinds.count("sidewalk") == 2
    assert kinds.index("sidewalk") < kinds.index("road")  # painter's order


def test_junction_scene_has_stop_lines_and_light_heads():
    gm = generate_map(sample_junction_layout(np.random.default_rng(1), kind="4way"))
    converter = SceneConverter(gm.road_map, gm.lights)
    states = gm.lights.states_at(0.0)
    scene = converter.convert(WorldState(0.0, _agents(), states), (0.0, 0.0, 0.0))
    controlled = sum(len(lt.stop_lines) for lt in gm.lights.lights)
    stop_lines = [m for m in scene.markings if m.width_m == pytest.approx(0.4)]
    assert len(stop_lines) == controlled
    assert "junction" in [g.kind for g in scene.ground]
    assert len(scene.lights) == len(gm.lights.lights)
    assert [h.state for h in scene.lights] == [states[lt.light_id] for lt in gm.lights.lights]
    assert all(h.position_xyz[2] > 3.0 for h in scene.lights)
    # junction connectors carry no paint
    n_lane_markings = len(scene.markings) - controlled
    plain = generate_map(dataclasses.replace(gm.layout, junction=None))
    assert n_lane_markings > len(render_scene(plain.road_map, AgentArrays.empty(), {}, (0.0, 0.0, 0.0)).markings)


def test_boxes_follow_agents():
    gm = generate_map(sample_straight_layout(np.random.default_rng(2), length_m=80.0))
    scene = render_scene(gm.road_map, _agents(), {}, (0.0, -1.7, 0.0))
    assert [b.kind for b in scene.boxes] == ["vehicle", "vehicle", "pedestrian", "obstacle"]
    assert [b.brake_on for b in scene.boxes] == [True, False, False, False]
    assert scene.boxes[0].center_xy == (10.0, -1.7)
    assert scene.boxes[2].height_m == pytest.approx(1.75)
    again = render_scene(gm.road_map, _agents(), {}, (0.0, -1.7, 0.0))
    assert [b.color for b in again.boxes] == [b.color for b in scene.boxes]  # colours are stable per id
    assert scene.boxes[0].color != scene.boxes[1].color
