"""Every scenario can be driven safely by a simple privileged driver: an IDM ego that follows its
route, keeps IDM gaps and stops for red lights and objects in its path. The frontal NCAP case
cannot be avoided by braking alone, but braking lowers the impact speed below v_ref."""

from dataclasses import replace

import numpy as np
import pytest

from contract.footprint import convex_overlap
from sim_eval.agents.idm import NUPLAN_IDM
from sim_eval.agents.traffic import TrafficSim
from sim_eval.agents.vehicle import VehicleAgent
from sim_eval.scenarios import build_scenario, suite_size

EGO_ID = 10_000


def _drive_idm_ego(sc):
    """Runs the scenario with the ego as an IDM agent; returns (first contact or None, ego log)."""
    vehicle = sc.ego_vehicle
    ego = VehicleAgent(
        EGO_ID,
        "idm",
        route=sc.ego_route,
        start_s_m=sc.ego_start_s_m + vehicle.rear_axle_to_centre_m,
        start_speed_mps=sc.ego_start.speed_mps,
        length_m=vehicle.length_m,
        width_m=vehicle.width_m,
    )
    sim = TrafficSim((ego, *sc.vehicles), sc.pedestrians, sc.lights, params=replace(NUPLAN_IDM, max_desired_speed_mps=14.0))
    log = []
    for _ in range(int(round(sc.duration_s / sim.dt_s))):
        agents = sim.step().agents
        k = int(np.flatnonzero(agents.agent_id == EGO_ID)[0])
        corners = agents.corners_xy()
        others = np.delete(np.arange(len(agents)), k)
        log.append((sim.time_s, float(agents.speed_mps[k]), float(sim._s[0])))
        hits = others[convex_overlap(corners[k][None], corners[others])] if len(others) else []
        if len(hits):
            j = int(hits[0])
            rel = np.hypot(*(agents.velocity_xy[k] - agents.velocity_xy[j]))
            return (sim.time_s, int(agents.agent_id[j]), float(rel)), log
    return None, log


CASES = [("smoke", 0)] + [
    (s, i) for s in ("nominal", "hazard", "ncap_stationary", "ncap_side") for i in range(suite_size(s))
]


@pytest.mark.parametrize("suite, index", CASES)
def test_an_idm_ego_completes_the_scenario_without_contact(suite, index):
    sc = build_scenario(suite, index, seed=1)
    contact, log = _drive_idm_ego(sc)
    assert contact is None, f"{sc.name}: contact {contact}"
    progress = log[-1][2] - (sc.ego_start_s_m + sc.ego_vehicle.rear_axle_to_centre_m)
    assert progress > 20.0
    if sc.goal.maneuver == "stop_at_light":
        light = sc.lights.light(sc.ego_route.stops[0].light_id)
        stopped_on_red = [v < 0.1 for t, v, _ in log if light.state_at(t) == "red"]
        assert any(stopped_on_red)


@pytest.mark.parametrize("index", range(suite_size("ncap_frontal")))
def test_braking_lowers_the_frontal_impact_speed_below_v_ref(index):
    sc = build_scenario("ncap_frontal", index, seed=1)
    contact, _ = _drive_idm_ego(sc)
    assert contact is not None and contact[1] == sc.ncap.actor_id
    assert contact[2] < 0.8 * sc.ncap.v_ref_mps
