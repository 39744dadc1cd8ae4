"""A hand-built two-way road scene for benchmarks and visual checks of the renderers.

The road follows a reference line of constant curvature starting at the world origin heading +x;
traffic drives on the right. Nothing here depends on the simulator's world/map.
"""

from __future__ import annotations

import functools

import numpy as np

from sim_eval.render.scene import Box, GroundPolygon, Marking, RenderScene, TrafficLightHead

_CAR_COLORS = ((30, 80, 160), (180, 30, 30), (200, 200, 205), (25, 25, 28), (230, 230, 235),
               (70, 110, 70), (150, 150, 155), (200, 150, 40))


def _reference_line(s_m: np.ndarray, curvature_1pm: float) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 2) and headings (N,) of the reference line at arc lengths s_m."""
    theta = curvature_1pm * s_m
    if abs(curvature_1pm) < 1e-9:
        xy = np.stack([s_m, np.zeros_like(s_m)], axis=1)
    else:
        xy = np.stack([np.sin(theta), 1 - np.cos(theta)], axis=1) / curvature_1pm
    return xy, theta


def road_pose(s_m: float, lateral_m: float, curvature_1pm: float) -> tuple[float, float, float]:
    """World (x, y, yaw) at arc length s_m along the reference line, lateral_m to its left."""
    xy, theta = _reference_line(np.array([s_m]), curvature_1pm)
    n = np.array([-np.sin(theta[0]), np.cos(theta[0])])
    p = xy[0] + lateral_m * n
    return float(p[0]), float(p[1]), float(theta[0])


def _offset_line(s_m: np.ndarray, lateral_m: float, curvature_1pm: float) -> np.ndarray:
    xy, theta = _reference_line(s_m, curvature_1pm)
    return xy + lateral_m * np.stack([-np.sin(theta), np.cos(theta)], axis=1)


def _strip(s_m: np.ndarray, right_m: float, left_m: float, curvature_1pm: float) -> np.ndarray:
    return np.concatenate([_offset_line(s_m, right_m, curvature_1pm),
                           _offset_line(s_m[::-1], left_m, curvature_1pm)])


@functools.lru_cache(maxsize=16)
def _road_map(lanes_per_direction: int, curvature_1pm: float, lane_width_m: float,
              length_m: float) -> tuple[tuple[GroundPolygon, ...], tuple[Marking, ...]]:
    """Ground and markings of the road; cached so successive frames share the same map objects,
    as the simulator's static map does."""
    s = np.linspace(-50.0, length_m, int(np.ceil((length_m + 50.0) / 2.0)) + 1)
    half = lanes_per_direction * lane_width_m
    ground = (
        GroundPolygon(_strip(s, -half - 3.0, -half, curvature_1pm), color=(150, 148, 142), kind="sidewalk"),
        GroundPolygon(_strip(s, half, half + 3.0, curvature_1pm), color=(150, 148, 142), kind="sidewalk"),
        GroundPolygon(_strip(s, -half, half, curvature_1pm), color=(72, 72, 76), kind="road"),
    )
    markings = [
        Marking(_offset_line(s, -half + 0.3, curvature_1pm), width_m=0.15),
        Marking(_offset_line(s, half - 0.3, curvature_1pm), width_m=0.15),
        Marking(_offset_line(s, 0.12, curvature_1pm), width_m=0.12, color=(230, 190, 40)),
        Marking(_offset_line(s, -0.12, curvature_1pm), width_m=0.12, color=(230, 190, 40)),
    ]
    for k in range(1, lanes_per_direction):
        for side in (-1.0, 1.0):
            markings.append(Marking(_offset_line(s, side * k * lane_width_m, curvature_1pm), width_m=0.15,
                                    dash_m=(3.0, 9.0)))
    return ground, tuple(markings)


def example_road_scene(
    ego_s_m: float = 0.0,
    lanes_per_direction: int = 3,
    n_vehicles: int = 8,
    curvature_1pm: float = 0.0,
    lane_width_m: float = 3.5,
    ego_lane: int = 1,
    length_m: float = 400.0,
    light_state: str = "red",
    seed: int = 0,
) -> RenderScene:
    """A road of `lanes_per_direction` lanes each way with `n_vehicles` cars around the ego.

    ego_s_m: ego position along the road; ego_lane: 0 = rightmost lane of the ego's direction.
    Vehicles are placed deterministically from `seed` (about a quarter oncoming), some braking.
    A traffic light stands on the right verge 70 m ahead of the road's start.
    """
    if lanes_per_direction < 1 or not (0 <= ego_lane < lanes_per_direction):
        raise ValueError(f"example_road_scene: need lanes_per_direction >= 1 and 0 <= ego_lane < it, "
                         f"got {lanes_per_direction}, {ego_lane}")
    if n_vehicles < 0:
        raise ValueError(f"example_road_scene: n_vehicles must be >= 0, got {n_vehicles}")
    rng = np.random.default_rng(seed)
    ground, markings = _road_map(lanes_per_direction, curvature_1pm, lane_width_m, length_m)
    half = lanes_per_direction * lane_width_m

    boxes = []
    cars_in_lane: dict[tuple[bool, int], int] = {}
    for i in range(n_vehicles):
        oncoming = i % 4 == 3
        lane = int(rng.integers(lanes_per_direction))
        lateral = (lane + 0.5) * lane_width_m * (1.0 if oncoming else -1.0)
        # Cars of one lane are spread out so they never overlap.
        k = cars_in_lane.get((oncoming, lane), 0)
        cars_in_lane[(oncoming, lane)] = k + 1
        ahead = 9.0 + 16.0 * k + float(rng.uniform(0.0, 12.0 if oncoming else 6.0))
        x, y, yaw = road_pose(ego_s_m + ahead, lateral + float(rng.uniform(-0.3, 0.3)), curvature_1pm)
        truck = rng.random() < 0.15
        boxes.append(Box(
            center_xy=(x, y),
            yaw_rad=yaw + (np.pi if oncoming else 0.0),
            length_m=9.0 if truck else float(rng.uniform(4.2, 5.0)),
            width_m=2.5 if truck else float(rng.uniform(1.8, 2.0)),
            height_m=3.4 if truck else float(rng.uniform(1.45, 1.75)),
            color=_CAR_COLORS[int(rng.integers(len(_CAR_COLORS)))],
            brake_on=bool(rng.random() < 0.4),
        ))
    lx, ly, lyaw = road_pose(70.0, -half - 1.0, curvature_1pm)
    lights = (TrafficLightHead(position_xyz=(lx, ly, 4.0), facing_yaw_rad=lyaw + np.pi, state=light_state),)
    ego = road_pose(ego_s_m, -(lanes_per_direction - ego_lane - 0.5) * lane_width_m, curvature_1pm)
    return RenderScene(ego_pose_xyyaw=ego, ground=ground, markings=markings, boxes=tuple(boxes), lights=lights)
