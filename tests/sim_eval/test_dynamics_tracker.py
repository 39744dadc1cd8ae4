"""LQR tracker + bicycle in closed loop against analytic references (straight, circle, stop, hold)."""

import math

import numpy as np
import pytest

from contract import Plan
from sim_eval.dynamics.lqr_tracker import (
    LQRTracker,
    LQRTrackerConfig,
    lift_lateral_dynamics,
    solve_held_input_lqr,
)
from sim_eval.dynamics.reference import ReferenceTrajectory
from sim_eval.dynamics.vehicle import EgoState, KinematicBicycle

DT = 0.1


def _drive(state: EgoState, reference: ReferenceTrajectory, n_steps: int) -> list[EgoState]:
    tracker, bicycle = LQRTracker(), KinematicBicycle()
    states = [state]
    for _ in range(n_steps):
        command = tracker.track(state, reference)
        state = bicycle.step(state, command.accel_mps2, command.steer_rad, DT)
        states.append(state)
    return states


def _stop_plan(state: EgoState, stop_x_m: float, num_waypoints: int = 8, dt_s: float = 0.5) -> Plan:
    """Constant deceleration along +x from `state` to a standstill at `stop_x_m` (ego frame = world here)."""
    distance, speed = max(stop_x_m - state.x_m, 0.0), state.speed_mps
    decel = speed**2 / (2 * distance) if distance > 1e-6 else 0.0
    times = dt_s * np.arange(1, num_waypoints + 1)
    times = np.minimum(times, speed / decel) if decel > 0 else 0 * times
    travelled = speed * times - 0.5 * decel * times**2
    return Plan(waypoints=np.stack([travelled, np.zeros_like(travelled)], axis=1), dt_s=dt_s)


def test_straight_constant_speed_plan_is_followed_to_centimetres():
    times = 0.5 * np.arange(25)
    xy = np.stack([10.0 * times, np.zeros_like(times)], axis=1)
    reference = ReferenceTrajectory.from_world_points(times, xy, 0.0)
    states = _drive(EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=10.0), reference, 100)
    errors = [math.hypot(s.x_m - 10.0 * s.time_s, s.y_m) for s in states]
    assert max(errors) < 0.03
    assert states[-1].time_s == pytest.approx(10.0)


def test_lateral_offset_is_corrected_smoothly():
    times = 0.5 * np.arange(25)
    reference = ReferenceTrajectory.from_world_points(times, np.stack([8.0 * times, 0 * times], axis=1), 0.0)
    start = EgoState(x_m=0.0, y_m=1.0, yaw_rad=0.0, speed_mps=8.0)
    assert LQRTracker().track(start, reference).steer_rad < 0  # 1 m left of the path: steer right
    states = _drive(start, reference, 100)
    lateral = np.array([s.y_m for s in states])
    assert abs(lateral[-1]) < 0.05 and lateral.min() > -0.3


def test_circular_arc_keeps_lateral_error_small():
    radius, speed = 30.0, 8.0
    times = 0.5 * np.arange(25)
    angle = speed * times / radius
    xy = np.stack([radius * np.sin(angle), radius * (1 - np.cos(angle))], axis=1)
    reference = ReferenceTrajectory.from_world_points(times, xy, 0.0)
    settled_steering = math.atan(KinematicBicycle().vehicle.wheelbase_m / radius)
    start = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=speed, steering_rad=settled_steering)
    states = _drive(start, reference, 100)
    lateral = [abs(math.hypot(s.x_m, s.y_m - radius) - radius) for s in states]
    assert max(lateral) < 0.3
    assert all(abs(s.speed_mps - speed) < 0.1 for s in states)
    travelled = math.atan2(states[-1].x_m, radius - states[-1].y_m) * radius
    assert travelled == pytest.approx(speed * 10.0, abs=1.0)


def test_replanned_stop_ends_near_the_stop_point():
    # As in the runner: a new plan (8 waypoints at 0.5 s) every 5 physics steps, braking to x = 16 m.
    tracker, bicycle = LQRTracker(), KinematicBicycle()
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=8.0)
    states = [state]
    for step in range(150):
        if step % 5 == 0:
            reference = ReferenceTrajectory.from_plan(_stop_plan(state, 16.0), state.pose_xyyaw, state.time_s)
        command = tracker.track(state, reference)
        state = bicycle.step(state, command.accel_mps2, command.steer_rad, DT)
        states.append(state)
    xs = np.array([s.x_m for s in states])
    assert np.all(np.diff(xs) >= 0)
    assert state.speed_mps < 0.01
    # nuPlan's tracker has no position loop and brakes toward the speed 1 s ahead, so it rolls on a little.
    assert 16.0 <= state.x_m < 17.75  # measured 17.52


def test_single_stopping_plan_stops_past_its_end_by_a_bounded_distance():
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=5.0)
    reference = ReferenceTrajectory.from_plan(_stop_plan(state, 10.0, num_waypoints=20), state.pose_xyyaw, 0.0)
    final = _drive(state, reference, 150)[-1]
    assert final.speed_mps < 0.01
    assert 10.0 <= final.x_m < 11.75  # measured 11.45


def test_stopping_controller_holds_a_stopped_car():
    plan = Plan(waypoints=np.zeros((8, 2)), dt_s=0.5)
    state = EgoState(x_m=5.0, y_m=1.0, yaw_rad=0.4, speed_mps=0.0, steering_rad=0.1)
    reference = ReferenceTrajectory.from_plan(plan, state.pose_xyyaw, 0.0)
    command = LQRTracker().track(state, reference)
    assert command.accel_mps2 == 0.0 and command.steer_rad == 0.1 and command.steering_rate_rps == 0.0
    states = _drive(state, reference, 50)
    assert all(s.x_m == 5.0 and s.y_m == 1.0 and s.speed_mps == 0.0 for s in states)


def test_stopping_controller_brings_a_creeping_car_to_rest():
    plan = Plan(waypoints=np.zeros((8, 2)), dt_s=0.5)
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=0.15)
    reference = ReferenceTrajectory.from_plan(plan, state.pose_xyyaw, 0.0)
    assert LQRTracker().track(state, reference).accel_mps2 == pytest.approx(-0.5 * 0.15)
    states = _drive(state, reference, 200)
    assert states[-1].speed_mps < 1e-3 and all(s.speed_mps >= 0 for s in states)
    assert states[-1].x_m < 0.15 / 0.5 + 0.05  # P control with gain 0.5 rolls v0 / 0.5 at most


def test_longitudinal_lqr_matches_its_closed_form():
    # v_N = v + (N dt) a; minimising 10 (v_N - v_ref)^2 + a^2 gives a = 10 T (v_ref - v) / (10 T^2 + 1), T = 1 s.
    times = 0.5 * np.arange(25)
    reference = ReferenceTrajectory.from_world_points(times, np.stack([10.0 * times, 0 * times], axis=1), 0.0)
    command = LQRTracker().track(EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=6.0), reference)
    assert command.accel_mps2 == pytest.approx(10.0 / 11.0 * (10.0 - 6.0), rel=1e-6)


def test_lifted_lateral_dynamics_match_stepping_the_linear_model():
    rng = np.random.default_rng(7)
    speeds, curvatures = rng.uniform(0.5, 15.0, 10), rng.uniform(-0.05, 0.05, 10)
    x0, rate = rng.normal(size=3), 0.3
    a_lift, b_lift, g_lift = lift_lateral_dynamics(speeds, curvatures, DT, 3.089)
    x = x0.copy()
    for speed, curvature in zip(speeds, curvatures):
        step = np.array([[1, speed * DT, 0], [0, 1, speed * DT / 3.089], [0, 0, 1]])
        x = step @ x + np.array([0, 0, DT]) * rate + np.array([0, -speed * curvature * DT, 0])
    np.testing.assert_allclose(a_lift @ x0 + b_lift[:, 0] * rate + g_lift, x, atol=1e-12)


def test_held_input_lqr_minimises_its_cost():
    rng = np.random.default_rng(3)
    a, b, g = rng.normal(size=(3, 3)), rng.normal(size=(3, 1)), rng.normal(size=3)
    x0, q, r = rng.normal(size=3), np.array([1.0, 10.0, 0.0]), np.array([1.0])
    u = solve_held_input_lqr(x0, np.zeros(3), q, r, a, b, g)

    def cost(v):
        residual = a @ x0 + b[:, 0] * v + g
        return residual @ (q * residual) + r[0] * v**2

    assert all(cost(u[0]) <= cost(u[0] + du) for du in (-1e-3, 1e-3))


def test_tracker_config_is_validated():
    with pytest.raises(ValueError, match="R weights"):
        LQRTrackerConfig(r_lateral=0.0)
    with pytest.raises(ValueError, match="tracking_horizon"):
        LQRTrackerConfig(tracking_horizon=1)
