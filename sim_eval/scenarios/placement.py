"""Placing the ego and other road users on a generated map."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

from contract.vehicle import PACIFICA, VehicleParameters
from sim_eval.agents.vehicle import VehicleAgent
from sim_eval.scenarios.scenario import EgoStart
from sim_eval.world.generator import GeneratedMap
from sim_eval.world.polyline import Polyline
from sim_eval.world.route import Route, build_route

CAR_LENGTH_RANGE_M = (4.2, 5.0)
CAR_WIDTH_RANGE_M = (1.8, 2.0)


def scenario_rng(suite: str, index: int, seed: int | None) -> np.random.Generator:
    """Generator for (suite, index, seed); seed None gives the seed-independent base stream."""
    key = [zlib.crc32(suite.encode()), int(index)]
    return np.random.default_rng(key if seed is None else [int(seed), *key])


def ego_start_on_route(route: Route, s_rear_axle_m: float, speed_mps: float) -> EgoStart:
    """Ego with its rear axle on the route centre line at arc length s, heading along the route."""
    x, y = route.path.point_at(s_rear_axle_m)
    return EgoStart(float(x), float(y), float(route.path.heading_at(s_rear_axle_m)), float(speed_mps))


def ego_front_s(s_rear_axle_m: float, vehicle: VehicleParameters = PACIFICA) -> float:
    """Arc length of the ego's front bumper when its rear axle is at s_rear_axle_m (straight-line approximation)."""
    return s_rear_axle_m + vehicle.rear_axle_to_front_m


def frame_point(path: Polyline, s_m: float, lateral_m: float) -> tuple[np.ndarray, float]:
    """World point at (s, lateral + left) in a path's frame, and the path heading there."""
    h = float(path.heading_at(s_m))
    xy = path.point_at(s_m) + lateral_m * np.array([-np.sin(h), np.cos(h)])
    return xy, h


def route_through(gm: GeneratedMap, start_lane: int, turn: str | None = None) -> tuple[int, ...]:
    """The start lane followed by successors until the map ends, taking a junction connector of the
    given turn when there is a choice (straight if available, else the first)."""
    lanes = gm.road_map.lanes
    ids = [start_lane]
    while lanes[ids[-1]].successors:
        succ = lanes[ids[-1]].successors
        want = turn or "straight"
        pick = [s for s in succ if lanes[s].turn == want] or list(succ)
        ids.append(pick[0])
        if len(ids) > 50:
            raise RuntimeError("route_through: lane graph has a cycle")
    return tuple(ids)


def car_size(rng: np.random.Generator) -> dict:
    return dict(length_m=float(rng.uniform(*CAR_LENGTH_RANGE_M)), width_m=float(rng.uniform(*CAR_WIDTH_RANGE_M)))


class AgentIds:
    """Sequential agent ids starting at 1 (0 is left for the ego in consumers that want one)."""

    def __init__(self) -> None:
        self._next = 1

    def __next__(self) -> int:
        value, self._next = self._next, self._next + 1
        return value

    def __iter__(self) -> Iterator[int]:
        return self


def idm_cars_on_lane(
    rng: np.random.Generator,
    ids: AgentIds,
    gm: GeneratedMap,
    lane_ids: tuple[int, ...],
    s_range_m: tuple[float, float],
    max_count: int,
    min_spacing_m: float = 25.0,
    speed_scale: tuple[float, float] = (0.6, 1.0),
    stop_s_m: float | None = None,
) -> list[VehicleAgent]:
    """Up to max_count IDM cars with centres in s_range_m along the route over lane_ids, spaced at
    least min_spacing_m apart; with stop_s_m (a stop line ahead), initial speeds allow a
    comfortable stop before it."""
    route = build_route(gm.road_map, lane_ids, gm.lights)
    lo, hi = max(s_range_m[0], 3.0), min(s_range_m[1], route.length_m - 10.0)
    count = int(rng.integers(0, max_count + 1))
    positions: list[float] = []
    for _ in range(count * 4):
        if len(positions) == count or hi <= lo:
            break
        s = float(rng.uniform(lo, hi))
        if all(abs(s - p) >= min_spacing_m for p in positions):
            positions.append(s)
    cars = []
    for s in sorted(positions):
        size = car_size(rng)
        desired = float(min(10.0, route.speed_limit_at(s)) * rng.uniform(*speed_scale))
        speed = desired
        if stop_s_m is not None and s < stop_s_m:
            room = max(stop_s_m - s - 0.5 * size["length_m"] - 3.0, 0.0)
            speed = min(speed, float(np.sqrt(2 * 1.5 * room)))
        cars.append(
            VehicleAgent(
                next(ids), "idm", route=route, start_s_m=s, start_speed_mps=speed, desired_speed_mps=desired, **size
            )
        )
    return cars


def oncoming_idm_cars(rng: np.random.Generator, ids: AgentIds, gm: GeneratedMap, max_per_lane: int) -> list[VehicleAgent]:
    """Up to max_per_lane IDM cars on each lane against the ego's direction, 5-200 m along its route."""
    cars: list[VehicleAgent] = []
    for lane in gm.backward_lane_ids:
        cars += idm_cars_on_lane(rng, ids, gm, route_through(gm, lane), (5.0, 200.0), max_per_lane)
    return cars
