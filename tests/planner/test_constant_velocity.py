"""Constant-velocity baseline: straight line of length v K dt, standing still for negative speed, closed loop."""

import numpy as np
import pytest

from contract import EpisodeInfo, Observation, validate_plan
from planner.baselines import ConstantVelocityPlanner
from sim_eval.dynamics.lqr_tracker import LQRTracker
from sim_eval.dynamics.reference import ReferenceTrajectory
from sim_eval.dynamics.vehicle import EgoState, KinematicBicycle


def _observation(speed_mps: float, yaw_rate_rps: float = 0.0, time_s: float = 0.0) -> Observation:
    return Observation(
        frames_rgb=np.zeros((1, 4, 6, 3), dtype=np.uint8),
        frame_timestamps_s=np.array([time_s]),
        ego_history_xyyaw=np.zeros((1, 3)),
        ego_history_timestamps_s=np.array([time_s]),
        speed_mps=speed_mps,
        accel_mps2=0.0,
        yaw_rate_rps=yaw_rate_rps,
        command=2,
        camera_intrinsics=np.array([[100.0, 0.0, 3.0], [0.0, 100.0, 2.0], [0.0, 0.0, 1.0]]),
        time_s=time_s,
    )


def test_straight_line_of_length_v_k_dt_even_while_turning():
    planner = ConstantVelocityPlanner(num_waypoints=8, plan_dt_s=0.5)
    planner.reset(EpisodeInfo("test"))
    plan = planner.plan(_observation(speed_mps=6.0, yaw_rate_rps=0.3))
    assert planner.name == "constant_velocity" and not planner.privileged and not planner.uses_camera
    assert (planner.num_waypoints, planner.plan_dt_s) == (8, 0.5)
    assert validate_plan(plan, expected_k=8, expected_dt_s=0.5) is None
    np.testing.assert_allclose(plan.waypoints[:, 0], 3.0 * np.arange(1, 9))
    np.testing.assert_allclose(plan.waypoints[:, 1:], 0.0)
    assert plan.waypoints[-1, 0] == pytest.approx(6.0 * 8 * 0.5)


def test_negative_speed_is_standing_still():
    plan = ConstantVelocityPlanner(6, 0.5).plan(_observation(speed_mps=-1.0))
    np.testing.assert_allclose(plan.waypoints, 0.0)


def test_closed_loop_on_an_empty_straight_road_drives_a_straight_line():
    planner, tracker, bicycle = ConstantVelocityPlanner(8, 0.5), LQRTracker(), KinematicBicycle()
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=9.0)
    for step in range(100):
        if step % 5 == 0:
            observation = _observation(state.speed_mps, state.yaw_rate_rps, state.time_s)
            reference = ReferenceTrajectory.from_plan(planner.plan(observation), state.pose_xyyaw, state.time_s)
        command = tracker.track(state, reference)
        state = bicycle.step(state, command.accel_mps2, command.steer_rad, 0.1)
    assert state.x_m == pytest.approx(90.0, abs=1e-6) and state.y_m == 0.0 and state.speed_mps == pytest.approx(9.0)
