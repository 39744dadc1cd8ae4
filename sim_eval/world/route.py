"""A route: consecutive lanes flattened into one path with its speed limits and stop lines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim_eval.world.polyline import Polyline
from sim_eval.world.road_map import RoadMap
from sim_eval.world.traffic_light import TrafficLights


@dataclass(frozen=True)
class RouteStop:
    """A signalised stop line on a route: light_id and arc length s_m along the route path."""

    light_id: int
    s_m: float


@dataclass(frozen=True, eq=False)
class Route:
    """lane_ids: consecutive lanes; path: their joined centre line; speed_limits_mps: (N,) per path
    point; stops: the stop lines met along the path, in order; lane_start_s_m: (L,) arc length at
    which each lane begins on the path."""

    lane_ids: tuple[int, ...]
    path: Polyline
    speed_limits_mps: np.ndarray
    stops: tuple[RouteStop, ...]
    lane_start_s_m: np.ndarray

    def __post_init__(self) -> None:
        limits = np.asarray(self.speed_limits_mps, dtype=np.float64)
        if limits.shape != (len(self.path.points_xy),):
            raise ValueError(
                f"Route.speed_limits_mps must have shape ({len(self.path.points_xy)},), got {limits.shape}"
            )
        if not (limits > 0).all():
            raise ValueError("Route.speed_limits_mps must be > 0")
        if len(self.lane_start_s_m) != len(self.lane_ids):
            raise ValueError("Route.lane_start_s_m must have one entry per lane")
        object.__setattr__(self, "speed_limits_mps", limits)

    @property
    def polyline_xy(self) -> np.ndarray:
        """(N, 2) route centre line, world metres."""
        return self.path.points_xy

    @property
    def length_m(self) -> float:
        return self.path.length_m

    def speed_limit_at(self, s_m: float | np.ndarray) -> np.ndarray:
        """Speed limit (m/s) at arc length s along the route (step-wise: the limit of the point
        at or before s)."""
        idx = np.clip(
            np.searchsorted(self.path.s_m, np.asarray(s_m, float), side="right") - 1, 0, len(self.path.s_m) - 1
        )
        return self.speed_limits_mps[idx]

    def lane_at_s(self, s_m: float) -> int:
        """The route lane that contains arc length s."""
        k = int(np.clip(np.searchsorted(self.lane_start_s_m, s_m, side="right") - 1, 0, len(self.lane_ids) - 1))
        return self.lane_ids[k]


def build_route(road_map: RoadMap, lane_ids: tuple[int, ...] | list[int], lights: TrafficLights | None = None) -> Route:
    """Route over consecutive lanes of road_map, with the stop lines of `lights` on those lanes."""
    ids = road_map.check_route(lane_ids)
    path = Polyline(road_map.route_polyline(ids))
    starts, stops, s = [], [], 0.0
    for lane_id in ids:
        starts.append(s)
        if lights is not None:
            found = lights.stop_line_for_lane(lane_id)
            if found is not None:
                stops.append(RouteStop(light_id=found[0], s_m=s + found[1].s_m))
        s += road_map.lanes[lane_id].length_m
    return Route(
        lane_ids=ids,
        path=path,
        speed_limits_mps=road_map.route_speed_limits(ids),
        stops=tuple(stops),
        lane_start_s_m=np.asarray(starts),
    )
