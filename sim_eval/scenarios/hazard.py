"""The `hazard` suite: a lead car braking hard, a pedestrian crossing in front, a slower car cutting
in. Each hazard is on a collision course with an ego that ignores it, yet leaves room for an ego
that reacts within REACTION_S to brake at PLANNING_DECEL_MPS2 or less."""

from __future__ import annotations

import numpy as np

from contract.vehicle import PACIFICA
from sim_eval.agents.pedestrian import Pedestrian
from sim_eval.agents.vehicle import SpeedProfile, VehicleAgent
from sim_eval.scenarios.placement import AgentIds, car_size, ego_front_s, ego_start_on_route, frame_point, oncoming_idm_cars, scenario_rng
from sim_eval.scenarios.scenario import Scenario
from sim_eval.world.generator import generate_map, sample_straight_layout
from sim_eval.world.polyline import Polyline
from sim_eval.world.route import build_route

HAZARD_VARIANTS = ("lead_brake", "pedestrian_crossing", "cut_in")
HAZARD_DURATION_S = 12.0
EGO_START_S_M = 20.0
PLANNING_DECEL_MPS2 = 3.0
REACTION_S = 1.0


def build_hazard(index: int, seed: int) -> Scenario:
    rng = scenario_rng("hazard", index, seed)
    variant = HAZARD_VARIANTS[index % len(HAZARD_VARIANTS)]
    vehicle = PACIFICA
    limit = {"lead_brake": 40 / 3.6, "pedestrian_crossing": 25 / 3.6, "cut_in": 40 / 3.6}[variant]
    layout = sample_straight_layout(rng, length_m=260.0, lanes_forward=2, speed_limit_mps=limit)
    gm = generate_map(layout)
    k = int(rng.integers(2))
    ego_lane = gm.forward_lane_ids[k]
    route = build_route(gm.road_map, (ego_lane,), gm.lights)
    path = route.path
    front = ego_front_s(EGO_START_S_M, vehicle)
    ids = AgentIds()
    vehicles: list[VehicleAgent] = []
    pedestrians: list[Pedestrian] = []

    if variant == "lead_brake":
        ego_speed = float(rng.uniform(0.8, 1.0)) * limit
        size = car_size(rng)
        brake_t = float(rng.uniform(2.5, 4.5))
        decel = float(rng.uniform(3.0, 5.0))
        profile = SpeedProfile(
            np.array([0.0, brake_t, brake_t + ego_speed / decel]), np.array([ego_speed, ego_speed, 0.0])
        )
        gap = float(rng.uniform(20.0, 30.0))
        vehicles.append(
            VehicleAgent(
                next(ids),
                "scripted",
                path=path,
                profile=profile,
                start_s_m=front + gap + 0.5 * size["length_m"],
                start_speed_mps=ego_speed,
                **size,
            )
        )
        maneuver = "lead_brake"
    elif variant == "pedestrian_crossing":
        ego_speed = limit  # an ego cruising at the limit meets the pedestrian as timed below
        walk = float(rng.uniform(1.0, 1.2))
        ped_size = 0.6
        half_path = 0.5 * vehicle.width_m + 0.3 + 0.5 * ped_size  # ego half width + margin + pedestrian
        edge_right = (layout.lanes_forward - k - 0.5) * layout.lane_width_m
        edge_left = (k + 0.5) * layout.lane_width_m + layout.lanes_backward * layout.lane_width_m
        l_start, l_end = -(edge_right + 1.0), edge_left + 1.0
        # the pedestrian enters the ego's path after the warm-up (start_time + >= 1 m of walking)
        room = ego_speed**2 / (2 * PLANNING_DECEL_MPS2) + ego_speed * REACTION_S
        in_path = 2 * half_path / walk
        lead = float(rng.uniform(room / ego_speed + 0.2, in_path - 0.3))  # ego arrival after path entry
        start_time = float(rng.uniform(0.5, 2.0))
        t_enter = start_time + (-l_start - half_path) / walk
        s_cross = front + ego_speed * (t_enter + lead)
        pts = np.stack(
            [frame_point(path, s_cross, l)[0] for l in np.arange(l_start, l_end, 0.5)]
            + [frame_point(path, s_cross, l_end)[0]]
        )
        pedestrians.append(
            Pedestrian(
                next(ids), Polyline(pts), speed_mps=walk, start_time_s=start_time, length_m=ped_size, width_m=ped_size
            )
        )
        maneuver = "yield_pedestrian"
    else:  # cut_in from the other same-direction lane
        ego_speed = float(rng.uniform(0.9, 1.0)) * limit
        size = car_size(rng)
        cut_speed = ego_speed - float(rng.uniform(1.0, 3.0))
        other = 1 - k
        l_other = (k - other) * layout.lane_width_m  # + left
        gap = float(rng.uniform(15.0, 25.0))
        s0 = front + gap + 0.5 * size["length_m"]
        s_lc = s0 + cut_speed * float(rng.uniform(1.0, 2.0))
        len_lc = cut_speed * float(rng.uniform(3.0, 4.5))
        s_grid = np.arange(s0 - 5.0, s_lc + len_lc + 150.0, 0.9)
        u = np.clip((s_grid - s_lc) / len_lc, 0.0, 1.0)
        lat = l_other * (1.0 - (3 * u**2 - 2 * u**3))  # smoothstep from the other lane to the ego lane
        pts = np.stack([frame_point(path, s, l)[0] for s, l in zip(s_grid, lat)])
        vehicles.append(
            VehicleAgent(
                next(ids),
                "scripted",
                path=Polyline(pts),
                profile=SpeedProfile.constant(cut_speed),
                start_s_m=5.0,
                start_speed_mps=cut_speed,
                **size,
            )
        )
        maneuver = "cut_in"

    vehicles += oncoming_idm_cars(rng, ids, gm, 1)
    ego = ego_start_on_route(route, EGO_START_S_M, ego_speed)
    return Scenario.on_route("hazard", index, seed, variant, gm, route, ego, maneuver, vehicles, pedestrians, duration_s=HAZARD_DURATION_S)
