"""World -> `RenderScene`: ground surfaces, painted markings, boxes for road users, light heads.

The map part (ground + markings) is built once per map by `SceneConverter`; each frame only adds
the boxes and light states.
"""

from __future__ import annotations

import numpy as np

from sim_eval.render.scene import Box, GroundPolygon, Marking, RenderScene, TrafficLightHead
from sim_eval.world.road_map import RoadMap
from sim_eval.world.state import AgentArrays, WorldState
from sim_eval.world.traffic_light import TrafficLights

DASH_M = (3.0, 6.0)  # on, off
LINE_WIDTH_M = 0.15
STOP_LINE_WIDTH_M = 0.4
WHITE = (235, 235, 235)
YELLOW = (230, 185, 40)
GROUND_COLORS = {"road": (70, 70, 74), "junction": (66, 66, 70), "sidewalk": (150, 148, 140)}
VEHICLE_PALETTE = (
    (30, 80, 160),
    (170, 30, 35),
    (220, 220, 220),
    (25, 25, 28),
    (120, 125, 130),
    (30, 110, 60),
    (200, 160, 40),
    (90, 50, 120),
    (160, 90, 40),
    (60, 140, 170),
)
PEDESTRIAN_PALETTE = ((200, 60, 50), (40, 70, 150), (60, 60, 60), (220, 180, 60))
OBSTACLE_COLOR = (230, 110, 20)
BRAKE_DECEL_MPS2 = 0.3  # brake lamps light when decelerating harder than this


def map_ground(road_map: RoadMap) -> tuple[GroundPolygon, ...]:
    """Sidewalks, then road surfaces, then junction boxes (painter's order); lane outlines when the
    map has no surfaces."""
    if not road_map.surfaces:
        return tuple(
            GroundPolygon(lane.polygon_xy(), GROUND_COLORS["road"], "road") for lane in road_map.lanes.values()
        )
    order = {"sidewalk": 0, "road": 1, "junction": 2}
    surfaces = sorted(road_map.surfaces, key=lambda s: order[s.kind])
    return tuple(GroundPolygon(s.polygon_xy, GROUND_COLORS[s.kind], s.kind) for s in surfaces)


def map_markings(road_map: RoadMap, lights: TrafficLights = TrafficLights()) -> tuple[Marking, ...]:
    """Lane lines (dashed white between same-direction lanes, solid yellow centre line between
    directions, solid white edges) and white stop lines of signalised lanes."""
    out: list[Marking] = []
    for lane in road_map.lanes.values():
        if lane.is_junction:
            continue
        if lane.right_marking != "none":
            dashed = lane.right_marking == "dashed"
            out.append(Marking(lane.boundary_xy("right"), LINE_WIDTH_M, WHITE, DASH_M if dashed else None))
        # a left boundary shared with a same-direction lane is that lane's right boundary: drawn there
        if lane.left_marking != "none" and lane.left_neighbor is None:
            if lane.left_opposite is None:
                out.append(
                    Marking(
                        lane.boundary_xy("left"), LINE_WIDTH_M, WHITE, DASH_M if lane.left_marking == "dashed" else None
                    )
                )
            elif lane.lane_id < lane.left_opposite:  # the centre line, once per road
                out.append(
                    Marking(
                        lane.boundary_xy("left"),
                        LINE_WIDTH_M,
                        YELLOW,
                        DASH_M if lane.left_marking == "dashed" else None,
                    )
                )
    for light in lights.lights:
        for stop in light.stop_lines:
            lane = road_map.lanes[stop.lane_id]
            s = max(stop.s_m - 0.5 * STOP_LINE_WIDTH_M, 0.0)
            h = float(lane.heading_at(s))
            normal = np.array([-np.sin(h), np.cos(h)])
            half = 0.5 * lane.width_m - 0.1
            c = lane.point_at(s)
            out.append(Marking(np.stack([c + half * normal, c - half * normal]), STOP_LINE_WIDTH_M, WHITE, None))
    return tuple(out)


def agent_boxes(agents: AgentArrays) -> tuple[Box, ...]:
    """One box per road user; vehicle colours are a stable function of the agent id."""
    boxes = []
    for i in range(len(agents)):
        kind = str(agents.kind[i])
        aid = int(agents.agent_id[i])
        if kind == "vehicle":
            color = VEHICLE_PALETTE[(aid * 7) % len(VEHICLE_PALETTE)]
        elif kind == "pedestrian":
            color = PEDESTRIAN_PALETTE[aid % len(PEDESTRIAN_PALETTE)]
        else:
            color = OBSTACLE_COLOR
        boxes.append(
            Box(
                center_xy=(float(agents.x_m[i]), float(agents.y_m[i])),
                yaw_rad=float(agents.yaw_rad[i]),
                length_m=float(agents.length_m[i]),
                width_m=float(agents.width_m[i]),
                height_m=float(agents.height_m[i]),
                color=color,
                kind=kind,
                brake_on=kind == "vehicle" and float(agents.accel_mps2[i]) < -BRAKE_DECEL_MPS2,
            )
        )
    return tuple(boxes)


def light_heads(lights: TrafficLights, light_states: dict[int, str]) -> tuple[TrafficLightHead, ...]:
    return tuple(
        TrafficLightHead(
            position_xyz=lt.head_xyz, facing_yaw_rad=lt.head_facing_yaw_rad, state=light_states.get(lt.light_id, "off")
        )
        for lt in lights.lights
    )


class SceneConverter:
    """Builds the map layers once; `convert(state, ego_pose_xyyaw)` makes one frame's RenderScene."""

    def __init__(self, road_map: RoadMap, lights: TrafficLights = TrafficLights()) -> None:
        self.road_map = road_map
        self.lights = lights
        self.ground = map_ground(road_map)
        self.markings = map_markings(road_map, lights)

    def convert(
        self, state: WorldState, ego_pose_xyyaw: tuple[float, float, float], extras: dict | None = None
    ) -> RenderScene:
        return RenderScene(
            ego_pose_xyyaw=tuple(float(v) for v in ego_pose_xyyaw),
            ground=self.ground,
            markings=self.markings,
            boxes=agent_boxes(state.agents),
            lights=light_heads(self.lights, state.light_states),
            extras=dict(extras or {}),
        )


def render_scene(
    road_map: RoadMap,
    agents: AgentArrays,
    light_states: dict[int, str],
    ego_pose_xyyaw: tuple[float, float, float],
    lights: TrafficLights = TrafficLights(),
) -> RenderScene:
    """One-shot conversion (rebuilds the map layers; use SceneConverter in loops).
    ego_pose_xyyaw: the ego's rear-axle pose (m, m, rad); agents: every other road user."""
    return SceneConverter(road_map, lights).convert(WorldState(0.0, agents, dict(light_states)), ego_pose_xyyaw)
