"""NeuroNCAP-style safety scenarios: a stationary car in the ego lane, an oncoming car in the ego
lane (5.6 m/s), a car cutting in from the side (3.2 m/s).

The base scene (road, ego lane and speed, nominal actor placement) depends only on (suite, index);
the seed draws the per-run jitter of the actor (uniform magnitudes in the ranges of the design note,
random sign) and the duration (7-12 s). The no-reaction ego (constant speed along its route) always
collides; its relative impact speed is v_ref. Stationary and side actors can be avoided by braking
from the start speed; the frontal one needs an evasive move (the road has a second lane in the
ego's direction) and braking lowers the impact speed.
"""

from __future__ import annotations

import numpy as np

from contract.footprint import convex_overlap
from contract.vehicle import PACIFICA, VehicleParameters
from sim_eval.agents.vehicle import SpeedProfile, VehicleAgent
from sim_eval.scenarios.placement import AgentIds, car_size, ego_front_s, ego_start_on_route, frame_point, oncoming_idm_cars, scenario_rng
from sim_eval.scenarios.scenario import WARMUP_STEPS, EgoStart, NcapInfo, Scenario
from sim_eval.world.generator import connector_path, generate_map, sample_straight_layout
from sim_eval.world.polyline import Polyline
from sim_eval.world.route import Route, build_route
from sim_eval.world.state import box_corners_xy

NCAP_SUITE_SIZES = {"ncap_stationary": 10, "ncap_frontal": 5, "ncap_side": 5}
# (longitudinal m, lateral m, yaw rad) jitter magnitude ranges per type
NCAP_JITTER = {
    "stationary": ((5.0, 10.0), (0.5, 1.5), (0.5, 1.0)),
    "frontal": ((3.0, 10.0), (0.5, 1.0), (0.0, 0.0)),
    "side": ((0.5, 7.0), (0.5, 1.0), (0.0, 0.0)),
}
SPEED_LIMIT_MPS = 40 / 3.6
FRONTAL_ACTOR_SPEED_MPS = 5.6
SIDE_ACTOR_SPEED_MPS = 3.2
DURATION_RANGE_S = (7.0, 12.0)
EGO_START_S_M = 20.0
PLANNING_DECEL_MPS2 = 3.0  # braking the stationary / side set-ups leave room for, after REACTION_S
REACTION_S = 1.0


def _signed(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.choice([-1.0, 1.0]) * rng.uniform(lo, hi)) if hi > 0 else 0.0


def no_reaction_impact(
    route: Route,
    ego: EgoStart,
    s_rear_m: float,
    actor: VehicleAgent,
    horizon_s: float,
    vehicle: VehicleParameters,
    dt_s: float = 0.05,
) -> tuple[float, float] | None:
    """(time s, relative speed m/s) of the first contact between the actor and an ego that keeps
    ego.speed_mps along route from s_rear_m, or None within horizon_s."""
    t = np.arange(0.0, horizon_s + 1e-9, dt_s)
    s_ego = s_rear_m + ego.speed_mps * t
    yaw_e = route.path.heading_at(s_ego)
    rear = route.path.point_at(s_ego)
    center_e = rear + vehicle.rear_axle_to_centre_m * np.stack([np.cos(yaw_e), np.sin(yaw_e)], 1)
    n = len(t)
    ego_corners = box_corners_xy(center_e, yaw_e, np.full(n, vehicle.length_m), np.full(n, vehicle.width_m))
    if actor.behavior == "static":
        x, y, yaw = actor.pose_xyyaw
        center_a, yaw_a, v_a = np.tile([x, y], (n, 1)), np.full(n, yaw), np.zeros(n)
    else:
        s_a = actor.start_s_m + actor.profile.distance_at(t)
        center_a, yaw_a, v_a = actor.path.point_at(s_a), actor.path.heading_at(s_a), actor.profile.speed_at(t)
    actor_corners = box_corners_xy(center_a, yaw_a, np.full(n, actor.length_m), np.full(n, actor.width_m))
    hits = np.flatnonzero(convex_overlap(ego_corners, actor_corners))
    if len(hits):
        k = int(hits[0])
        vel_e = ego.speed_mps * np.array([np.cos(yaw_e[k]), np.sin(yaw_e[k])])
        vel_a = v_a[k] * np.array([np.cos(yaw_a[k]), np.sin(yaw_a[k])])
        return float(t[k]), float(np.hypot(*(vel_e - vel_a)))
    return None


def build_ncap(suite: str, index: int, seed: int) -> Scenario:
    kind = suite.removeprefix("ncap_")
    if suite not in NCAP_SUITE_SIZES:
        raise ValueError(f"unknown NCAP suite {suite!r}")
    base = scenario_rng(suite, index, None)
    run = scenario_rng(suite, index, seed)
    vehicle = PACIFICA

    layout = sample_straight_layout(
        base, length_m=280.0, lanes_forward=2, lanes_backward=int(base.integers(1, 3)), speed_limit_mps=SPEED_LIMIT_MPS
    )
    gm = generate_map(layout)
    ego_lane = gm.forward_lane_ids[index % 2]
    route = build_route(gm.road_map, (ego_lane,), gm.lights)
    ego_speed = float(base.uniform(8.0, SPEED_LIMIT_MPS))
    ego = ego_start_on_route(route, EGO_START_S_M, ego_speed)
    front = ego_front_s(EGO_START_S_M, vehicle)
    path = route.path
    ids = AgentIds()
    actor_id = next(ids)
    (lon_lo, lon_hi), (lat_lo, lat_hi), (yaw_lo, yaw_hi) = NCAP_JITTER[kind]
    lon, lat, yaw_j = _signed(run, lon_lo, lon_hi), _signed(run, lat_lo, lat_hi), _signed(run, yaw_lo, yaw_hi)
    size = car_size(base)

    if kind == "stationary":
        # the ego replays its reference motion during the warm-up, then may react after REACTION_S
        # an ego that speeds up to the limit still has room to brake
        stop_room = SPEED_LIMIT_MPS**2 / (2 * PLANNING_DECEL_MPS2) + SPEED_LIMIT_MPS * (REACTION_S + 0.5 * WARMUP_STEPS)
        nominal = stop_room + 5.0 + lon_hi + 0.5 * (size["length_m"] + size["width_m"])
        xy, h = frame_point(path, front + nominal + lon, lat)
        actor = VehicleAgent(actor_id, "static", pose_xyyaw=(float(xy[0]), float(xy[1]), float(h + yaw_j)), **size)
    elif kind == "frontal":
        t_nominal = float(base.uniform(3.5, 5.5))
        gap = (ego_speed + FRONTAL_ACTOR_SPEED_MPS) * t_nominal + lon
        actor_path = Polyline(path.offset(lat)[::-1].copy())
        start_xy, _ = frame_point(path, front + gap + 0.5 * size["length_m"], lat)
        start_s = float(actor_path.project(start_xy).s_m)
        actor = VehicleAgent(
            actor_id,
            "scripted",
            path=actor_path,
            profile=SpeedProfile.constant(FRONTAL_ACTOR_SPEED_MPS),
            start_s_m=start_s,
            start_speed_mps=FRONTAL_ACTOR_SPEED_MPS,
            **size,
        )
    else:  # side: pulls out from the right road side across the lanes into the ego lane
        t_merge = float(base.uniform(3.5, 5.0))
        alpha = float(base.uniform(0.6, 0.9))
        k = gm.forward_lane_ids.index(ego_lane)
        edge = (layout.lanes_forward - k - 0.5) * layout.lane_width_m
        s_merge = (
            front + ego_speed * t_merge + 0.5 * size["length_m"] + 2.5 + lon_hi + lon
        )  # ego >= 2.5 m behind at merge
        l_start = -(edge + 1.0)
        a = (lat - l_start) / np.sin(alpha)
        s_start = s_merge - a - a * np.cos(alpha)
        merge_xy, h = frame_point(path, s_merge, lat)
        start_xy, _ = frame_point(path, s_start, l_start)
        turn_pts, _ = connector_path(start_xy, h + alpha, merge_xy, h)
        travelled = SIDE_ACTOR_SPEED_MPS * t_merge
        turn_len = float(np.hypot(*np.diff(turn_pts, axis=0).T).sum())
        lead_in = max(travelled - turn_len, 0.0) + 1.0
        back = np.array([np.cos(h + alpha), np.sin(h + alpha)])
        lead_pts = start_xy - np.outer(np.linspace(lead_in, 0.0, int(np.ceil(lead_in / 0.9)) + 1), back)
        tail = np.stack([frame_point(path, s_merge + u, lat)[0] for u in np.arange(0.9, 120.0, 0.9)])
        actor_path = Polyline(np.concatenate([lead_pts[:-1], turn_pts, tail]))
        actor = VehicleAgent(
            actor_id,
            "scripted",
            path=actor_path,
            profile=SpeedProfile.constant(SIDE_ACTOR_SPEED_MPS),
            start_s_m=lead_in + turn_len - travelled,
            start_speed_mps=SIDE_ACTOR_SPEED_MPS,
            **size,
        )

    impact = no_reaction_impact(route, ego, EGO_START_S_M, actor, DURATION_RANGE_S[1], vehicle)
    if impact is None:
        raise RuntimeError(f"{suite}/{index} seed {seed}: the no-reaction ego misses the actor")
    t_impact, v_ref = impact
    duration = float(
        run.uniform(max(DURATION_RANGE_S[0], min(t_impact + 1.5, DURATION_RANGE_S[1])), DURATION_RANGE_S[1])
    )
    vehicles = [actor, *oncoming_idm_cars(run, ids, gm, 1)]
    ncap = NcapInfo(kind, actor_id, ego_speed, v_ref, t_impact, lon, lat, yaw_j)
    return Scenario.on_route(suite, index, seed, None, gm, route, ego, "straight", vehicles, duration_s=duration, ncap=ncap)
