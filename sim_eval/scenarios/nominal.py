"""The `nominal` suite (everyday driving) and `smoke` (a short empty straight road).

Every scenario is built from numpy Generators seeded by (suite, index, seed); index picks the
variant (index % len(NOMINAL_VARIANTS)). The ego always starts on the lane its route needs (no lane
change required), below the speed limit, with enough room to stop for red lights and leads at a
comfortable deceleration; cross traffic waits at red lights whenever the ego has right of way.
"""

from __future__ import annotations

import numpy as np

from contract.vehicle import PACIFICA
from sim_eval.agents.vehicle import SpeedProfile, VehicleAgent
from sim_eval.scenarios.placement import (
    AgentIds,
    car_size,
    ego_front_s,
    ego_start_on_route,
    idm_cars_on_lane,
    oncoming_idm_cars,
    route_through,
    scenario_rng,
)
from sim_eval.scenarios.scenario import Scenario
from sim_eval.world.generator import (
    GeneratedMap,
    generate_map,
    sample_curve_layout,
    sample_junction_layout,
    sample_straight_layout,
)
from sim_eval.world.route import build_route

NOMINAL_VARIANTS = (
    "straight",
    "curve_left",
    "curve_right",
    "junction_straight",
    "junction_left",
    "junction_right",
    "follow_lead",
    "stop_and_go",
    "red_light",
)
NOMINAL_DURATION_S = 15.0
EGO_START_S_M = 40.0  # rear axle arc length on the first lane (room for a follower behind)
ROUTE_MARGIN_M = 40.0  # route left beyond what the ego can cover at the limit


def _needed_length(speed_limit_mps: float, duration_s: float) -> float:
    return speed_limit_mps * duration_s + ROUTE_MARGIN_M


def build_smoke(index: int, seed: int) -> Scenario:
    """A short straight road with no other road users (10 s)."""
    rng = scenario_rng("smoke", index, seed)
    duration = 10.0
    layout = sample_straight_layout(rng, length_m=10.0 + _needed_length(40 / 3.6, duration), speed_limit_mps=40 / 3.6)
    gm = generate_map(layout)
    lane = gm.forward_lane_ids[int(rng.integers(len(gm.forward_lane_ids)))]
    route = build_route(gm.road_map, (lane,), gm.lights)
    ego = ego_start_on_route(route, 10.0, float(rng.uniform(5.0, 8.0)))
    return Scenario.on_route("smoke", index, seed, "straight", gm, route, ego, "straight", duration_s=duration)


def _oncoming_and_side_traffic(
    rng, ids, gm: GeneratedMap, ego_lane: int, ego_front: float, turn: str | None, junction_oncoming: bool
):
    """IDM background: oncoming cars on the main road, cars in the other same-direction lanes
    ahead of the ego, optionally oncoming cars approaching the junction from the straight arm."""
    cars = oncoming_idm_cars(rng, ids, gm, 2)
    for lane in gm.forward_lane_ids:
        if lane != ego_lane:
            route_ids = route_through(gm, lane, "straight")
            stop = _stop_s(gm, route_ids)
            cars += idm_cars_on_lane(rng, ids, gm, route_ids, (ego_front + 12.0, ego_front + 80.0), 2, stop_s_m=stop)
    if gm.junction is not None and junction_oncoming and gm.junction.has_arm("straight"):
        for lane in gm.junction.arm("straight").incoming_lane_ids:
            route_ids = route_through(gm, lane, "straight")
            stop = _stop_s(gm, route_ids)
            first_len = gm.road_map.lanes[lane].length_m
            cars += idm_cars_on_lane(rng, ids, gm, route_ids, (first_len - 70.0, first_len - 15.0), 1, stop_s_m=stop)
    return cars


def _cross_traffic(rng, ids, gm: GeneratedMap) -> list[VehicleAgent]:
    """Cars approaching the junction on the left/right arms (they obey their lights)."""
    cars: list[VehicleAgent] = []
    if gm.junction is None:
        return cars
    for arm in gm.junction.arms:
        if arm.name in ("left", "right"):
            for lane in arm.incoming_lane_ids:
                route_ids = route_through(gm, lane, "straight")
                stop = _stop_s(gm, route_ids)
                first_len = gm.road_map.lanes[lane].length_m
                cars += idm_cars_on_lane(
                    rng, ids, gm, route_ids, (first_len - 60.0, first_len - 8.0), 2, min_spacing_m=14.0, stop_s_m=stop
                )
    return cars


def _stop_s(gm: GeneratedMap, route_ids: tuple[int, ...]) -> float | None:
    route = build_route(gm.road_map, route_ids, gm.lights)
    return route.stops[0].s_m if route.stops else None


def _follower(rng, ids, gm: GeneratedMap, ego_route, ego_rear_s: float, ego_speed: float) -> list[VehicleAgent]:
    """With probability 1/2, an IDM car 20-30 m behind the ego in its lane."""
    if rng.random() >= 0.5:
        return []
    size = car_size(rng)
    s = ego_rear_s - float(rng.uniform(20.0, 30.0))
    if s - 0.5 * size["length_m"] < 0:
        return []
    return [VehicleAgent(next(ids), "idm", route=ego_route, start_s_m=s, start_speed_mps=min(ego_speed, 10.0), **size)]


def build_nominal(index: int, seed: int) -> Scenario:
    rng = scenario_rng("nominal", index, seed)
    variant = NOMINAL_VARIANTS[index % len(NOMINAL_VARIANTS)]
    ids = AgentIds()
    duration = NOMINAL_DURATION_S
    vehicles: list[VehicleAgent] = []
    limit = float(rng.choice([40 / 3.6, 50 / 3.6]))
    need = EGO_START_S_M + _needed_length(limit, duration)
    s_rear = EGO_START_S_M
    turn = None

    if variant in ("straight", "follow_lead", "stop_and_go"):
        gm = generate_map(sample_straight_layout(rng, length_m=need + float(rng.uniform(0, 40)), speed_limit_mps=limit))
    elif variant.startswith("curve"):
        direction = variant.split("_")[1]
        gm = generate_map(
            sample_curve_layout(
                rng, direction, lead_in_m=float(rng.uniform(25, 45)), lead_out_m=need, speed_limit_mps=limit
            )
        )
    elif variant.startswith("junction"):
        turn = variant.split("_")[1]
        ego_speed_guess = 0.7 * limit
        approach = s_rear + ego_speed_guess * float(rng.uniform(3.0, 5.0)) + 5.0
        gm = generate_map(
            sample_junction_layout(
                rng,
                need_arm=turn,
                approach_m=approach,
                arm_length_m=_needed_length(limit, duration),
                main_green_start_s=-float(rng.uniform(2.0, 8.0)),
                main_green_s=60.0,
                speed_limit_mps=limit,
            )
        )
    else:  # red_light
        turn = "straight"
        ego_speed = float(rng.uniform(0.5, 0.9)) * limit
        stop_gap = ego_speed**2 / (2 * 1.5) + float(rng.uniform(10.0, 30.0))  # ego front -> stop line
        red_s = stop_gap / ego_speed + float(rng.uniform(3.0, 6.0))
        duration = max(duration, red_s + 8.0)
        approach = s_rear + ego_front_s(0.0) + stop_gap
        gm = generate_map(
            sample_junction_layout(
                rng,
                need_arm="straight",
                approach_m=approach,
                arm_length_m=_needed_length(limit, duration),
                main_green_start_s=red_s,
                main_green_s=60.0,
                cross_green_s=red_s + 5.0,
                speed_limit_mps=limit,
            )
        )

    # ego lane: the one whose connectors allow the manoeuvre without a lane change
    fwd = gm.forward_lane_ids
    if turn == "left":
        ego_lane = fwd[0]
    elif turn == "right":
        ego_lane = fwd[-1]
    else:
        ego_lane = fwd[int(rng.integers(len(fwd)))]
    route = build_route(gm.road_map, route_through(gm, ego_lane, turn), gm.lights)
    if variant != "red_light":
        ego_speed = float(rng.uniform(0.5, 0.9)) * limit
    front = ego_front_s(s_rear)

    if variant == "follow_lead":
        size = car_size(rng)
        lead_speed = float(rng.uniform(5.0, 8.0))
        ego_speed = min(limit, lead_speed + float(rng.uniform(0.0, 2.0)))
        s_lead = front + float(rng.uniform(20.0, 35.0)) + 0.5 * size["length_m"]
        vehicles.append(
            VehicleAgent(
                next(ids),
                "idm",
                route=route,
                start_s_m=s_lead,
                start_speed_mps=lead_speed,
                desired_speed_mps=lead_speed,
                **size,
            )
        )
    elif variant == "stop_and_go":
        size = car_size(rng)
        profile = _stop_and_go_profile(rng, duration)
        ego_speed = float(profile.speed_mps[0])
        s_lead = front + float(rng.uniform(25.0, 35.0)) + 0.5 * size["length_m"]
        vehicles.append(
            VehicleAgent(
                next(ids),
                "scripted",
                path=route.path,
                profile=profile,
                start_s_m=s_lead,
                start_speed_mps=ego_speed,
                **size,
            )
        )

    vehicles += _oncoming_and_side_traffic(
        rng, ids, gm, ego_lane, front, turn, junction_oncoming=turn in ("straight", "right")
    )
    vehicles += _cross_traffic(rng, ids, gm)
    vehicles += _follower(rng, ids, gm, route, s_rear - PACIFICA.rear_axle_to_rear_m, ego_speed)

    if route.length_m < s_rear + _needed_length(limit, duration) - 1.0:
        raise RuntimeError(f"nominal/{variant}: route too short ({route.length_m:.0f} m)")
    maneuver = {
        "junction_left": "left",
        "junction_right": "right",
        "follow_lead": "follow",
        "stop_and_go": "stop_and_go",
        "red_light": "stop_at_light",
    }.get(variant, "straight")
    ego = ego_start_on_route(route, s_rear, ego_speed)
    return Scenario.on_route("nominal", index, seed, variant, gm, route, ego, maneuver, vehicles, duration_s=float(duration))


def _stop_and_go_profile(rng: np.random.Generator, duration_s: float) -> SpeedProfile:
    """Cruise, brake to a stop (1.5-2 m/s^2), wait, accelerate (1 m/s^2), repeated to cover duration."""
    cruise = float(rng.uniform(6.0, 9.0))
    t, v = [0.0], [cruise]
    while t[-1] < duration_s + 5.0:
        t.append(t[-1] + float(rng.uniform(2.0, 4.0)))
        v.append(cruise)
        t.append(t[-1] + cruise / float(rng.uniform(1.5, 2.0)))
        v.append(0.0)
        t.append(t[-1] + float(rng.uniform(2.0, 4.0)))
        v.append(0.0)
        t.append(t[-1] + cruise / 1.0)
        v.append(cruise)
    return SpeedProfile(np.array(t), np.array(v))
