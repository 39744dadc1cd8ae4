"""The privileged expert's way back to its lane centre is laid out over the distance it travels:
from a standstill off the centre it plans no sideways slide (the labels DAgger trains on must be
plans a car can drive), and at a steady speed the move is the exponential in time it always was."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from contract import EpisodeInfo, PrivilegedState, ego_to_world
from sim_eval.agents.expert import ExpertConfig, ExpertPlanner
from sim_eval.dynamics.vehicle import EgoState
from sim_eval.scenarios.suites import build_scenario
from sim_eval.simulation import Simulation

OFFSET_M = 0.8  # the ego's distance left of its route [m]


def _plan_from_offset(speed_mps: float) -> tuple[np.ndarray, np.ndarray, ExpertConfig]:
    """The expert's plan poses (K, 3) from the start of `nominal/000` (a straight road) with the ego
    moved OFFSET_M to the left of its route at `speed_mps`, and the route's lateral offset of each
    waypoint (K,) [m] (positive: left of the route)."""
    scenario = build_scenario("nominal", 0, 0)
    sim = Simulation(scenario)
    route = scenario.ego_route.path
    proj = route.project(np.array([sim.ego.x_m, sim.ego.y_m]))
    heading = route.heading_at(proj.s_m)
    x, y = np.asarray(route.point_at(proj.s_m)) + OFFSET_M * np.array([-np.sin(heading), np.cos(heading)])
    ego = EgoState(float(x), float(y), float(heading), speed_mps)
    expert = ExpertPlanner()
    expert.reset(EpisodeInfo("offset", scenario))
    poses = expert.plan_poses(PrivilegedState(scenario, sim.world, ego))
    world = ego_to_world(poses[:, :2], np.array([x, y, heading]))
    lateral = np.array([route.project(p).lateral_m for p in world])
    return poses, lateral, expert.config


def test_from_a_standstill_off_centre_the_plan_moves_sideways_only_as_it_moves_forward():
    poses, lateral, cfg = _plan_from_offset(0.0)
    forward = np.diff(np.r_[0.0, poses[:, 0]])  # (K,) [m] forward progress per waypoint
    sideways = np.abs(np.diff(np.r_[OFFSET_M, lateral]))  # (K,) [m] lateral change per waypoint
    assert forward.min() >= 0.0
    # An exponential approach over length L moves at most 1/L of the remaining offset per metre driven.
    assert np.all(sideways <= forward * OFFSET_M / cfg.lane_change_min_length_m + 1e-3), (forward, sideways)
    # The first half second from standstill covers centimetres: the plan is still almost where the ego is
    # (over time, with tau 0.7 s, half of the offset would be gone by then: a 0.4 m sideways slide).
    assert abs(lateral[0] - OFFSET_M) < 0.1
    assert lateral[-1] < OFFSET_M  # and it does head back to the centre as it drives off


@pytest.mark.parametrize("speed_mps", [8.0, 12.0])
def test_at_a_steady_speed_the_way_back_is_the_exponential_in_time(speed_mps):
    poses, lateral, cfg = _plan_from_offset(speed_mps)
    assert cfg.lane_change_tau_s * speed_mps > cfg.lane_change_min_length_m
    forward = poses[:, 0]
    # Over the distance actually planned (the speed profile may change a little): exp(-ds / (tau v)).
    expected = OFFSET_M * np.exp(-forward / (cfg.lane_change_tau_s * speed_mps))
    assert np.allclose(lateral, expected, atol=0.05), (lateral, expected)


def test_the_minimum_length_is_a_checked_setting():
    cfg = ExpertConfig.default()
    assert cfg.lane_change_min_length_m > 0
    with pytest.raises(ValueError, match="lane_change_min_length_m"):
        dataclasses.replace(cfg, lane_change_min_length_m=0.0)
