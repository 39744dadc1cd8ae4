"""LQR tracker from a reference trajectory to (acceleration, steering) commands, as nuPlan's LQRTracker.

Two decoupled subproblems, each a finite-horizon discrete LQR over N = 10 steps of 0.1 s in which
the input is held constant over the horizon and the cost is on the state at the horizon's end
(nuPlan's formulation: one Riccati stage on the lifted N-step dynamics, in closed form):

- longitudinal: state speed v, input acceleration a; v_N = v_0 + N dt a; Q 10, R 1; the target is
  the reference speed N dt ahead.
- lateral: state [lateral error, heading error, steering angle], input steering rate; the bicycle
  linearised about the reference curvature kappa_k (small angles, tan(delta) ~ delta):
      e_lat' = v e_head,   e_head' = v (delta / wheelbase - kappa),   delta' = steering rate,
  Euler-discretised per step with the speed profile implied by the chosen acceleration;
  Q diag(1, 10, 0), R 1.
- at a near stop (reference speed N dt ahead and current speed both <= 0.2 m/s): a P controller on
  speed with gain 0.5 and no steering motion.

Errors are taken against the reference at the current time (time-indexed, not the closest point),
and the ego's lateral error is measured in the reference heading's frame, as in nuPlan. The steering
rate becomes a steering-angle command delta + rate * dt, the angle the rate would reach after one
control step; the vehicle's steering lag then acts on that command.

Differences from nuPlan: reference speed and curvature come from the splined plan
(`ReferenceTrajectory`) rather than nuPlan's regularised least-squares fit, and the curvature is
clipped to what the steering limit allows. Inherited behaviour worth knowing: with no position loop
and braking toward the speed 1 s ahead (a ~1.1 s exponential approach), the ego rolls past the end of
a stopping plan, by ~0.5-2.2 m from 5-10 m/s when one plan is followed to the end, and by ~1-1.5 m with
a new plan every 0.5 s (tests/sim_eval/test_dynamics_tracker.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from contract.vehicle import PACIFICA, VehicleParameters
from sim_eval.dynamics.reference import ReferenceTrajectory
from sim_eval.dynamics.vehicle import EgoState, wrap_angle


@dataclass(frozen=True)
class LQRTrackerConfig:
    """Weights and horizon; defaults are nuPlan's."""

    q_longitudinal: float = 10.0
    r_longitudinal: float = 1.0
    q_lateral: tuple[float, float, float] = (1.0, 10.0, 0.0)
    r_lateral: float = 1.0
    discretization_time_s: float = 0.1
    tracking_horizon: int = 10
    stopping_gain: float = 0.5
    stopping_speed_mps: float = 0.2

    def __post_init__(self) -> None:
        if len(self.q_lateral) != 3 or min(self.q_lateral) < 0 or self.q_longitudinal < 0:
            raise ValueError(f"LQRTrackerConfig: Q weights must be >= 0 (q_lateral has 3), got {self}")
        if self.r_longitudinal <= 0 or self.r_lateral <= 0:
            raise ValueError(f"LQRTrackerConfig: R weights must be > 0, got {self}")
        if not self.discretization_time_s > 0:
            raise ValueError(f"LQRTrackerConfig.discretization_time_s must be > 0, got {self.discretization_time_s}")
        # With Euler steps a steering rate first moves the heading error at the second step.
        if self.tracking_horizon < 2:
            raise ValueError(f"LQRTrackerConfig.tracking_horizon must be >= 2, got {self.tracking_horizon}")
        if self.stopping_gain <= 0 or self.stopping_speed_mps <= 0:
            raise ValueError(f"LQRTrackerConfig: stopping gain and speed must be > 0, got {self}")


class ControlCommand(NamedTuple):
    """Tracker output: accel_mps2 [m/s^2] and steer_rad [rad] (the commands for KinematicBicycle.step),
    plus steering_rate_rps [rad/s], the LQR input behind steer_rad, for logging."""

    accel_mps2: float
    steer_rad: float
    steering_rate_rps: float


def solve_held_input_lqr(
    initial_state: np.ndarray,
    target_state: np.ndarray,
    q_diag: np.ndarray,
    r_diag: np.ndarray,
    a_matrix: np.ndarray,
    b_matrix: np.ndarray,
    affine: np.ndarray,
    angle_indices: tuple[int, ...] = (),
) -> np.ndarray:
    """Input u minimising |A x0 + B u + g - target|_Q^2 + |u|_R^2 (angle residuals wrapped).

    Shapes: x0, target, g, q_diag (n,); A (n, n); B (n, m); r_diag (m,). Returns u (m,).
    """
    residual = a_matrix @ initial_state + affine - target_state
    for index in angle_indices:
        residual[index] = wrap_angle(float(residual[index]))
    q = np.diag(q_diag)
    hessian = b_matrix.T @ q @ b_matrix + np.diag(r_diag)
    return -np.linalg.solve(hessian, b_matrix.T @ q @ residual)


def lift_lateral_dynamics(
    speed_profile_mps: np.ndarray, curvature_profile_per_m: np.ndarray, dt_s: float, wheelbase_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lateral error dynamics over N Euler steps with the input held: x_N = A x_0 + B u + g.

    x = [lateral error m, heading error rad, steering rad], u = steering rate [rad/s]; one step is
    x_{k+1} = A_k x_k + b u + g_k with A_k = [[1, v dt, 0], [0, 1, v dt / L], [0, 0, 1]],
    b = [0, 0, dt], g_k = [0, -v kappa dt, 0]. Profiles (N,). Returns A (3, 3), B (3, 1), g (3,).
    """
    # A stays unit upper triangular, so only a01, a02, a12 are carried (plain floats: this runs at 10 Hz).
    a01 = a02 = a12 = 0.0
    b0 = b1 = b2 = 0.0
    g0 = g1 = 0.0
    for speed, curvature in zip(np.asarray(speed_profile_mps).tolist(), np.asarray(curvature_profile_per_m).tolist()):
        alpha, beta = speed * dt_s, speed * dt_s / wheelbase_m
        a01, a02, a12 = a01 + alpha, a02 + alpha * a12, a12 + beta
        b0, b1, b2 = b0 + alpha * b1, b1 + beta * b2, b2 + dt_s
        g0, g1 = g0 + alpha * g1, g1 - speed * curvature * dt_s
    a_lift = np.array([[1.0, a01, a02], [0.0, 1.0, a12], [0.0, 0.0, 1.0]])
    return a_lift, np.array([[b0], [b1], [b2]]), np.array([g0, g1, 0.0])


class LQRTracker:
    """Tracks a `ReferenceTrajectory` with the bicycle's acceleration and steering commands."""

    def __init__(self, config: LQRTrackerConfig | None = None, vehicle: VehicleParameters | None = None) -> None:
        self.config = config if config is not None else LQRTrackerConfig()
        self.vehicle = vehicle if vehicle is not None else PACIFICA

    def track(self, state: EgoState, reference: ReferenceTrajectory) -> ControlCommand:
        """Commands to follow `reference` from `state` at time state.time_s."""
        cfg = self.config
        dt, horizon = cfg.discretization_time_s, cfg.tracking_horizon
        now = state.time_s

        ref_x, ref_y, ref_heading = reference.pose_at(now)
        dx, dy = state.x_m - ref_x, state.y_m - ref_y
        lateral_error = -dx * math.sin(ref_heading) + dy * math.cos(ref_heading)
        heading_error = wrap_angle(state.yaw_rad - ref_heading)

        target_speed = float(reference.speed_at(now + horizon * dt))
        speed = state.speed_mps
        if target_speed <= cfg.stopping_speed_mps and speed <= cfg.stopping_speed_mps:
            accel = -cfg.stopping_gain * (speed - target_speed)
            return ControlCommand(accel_mps2=accel, steer_rad=state.steering_rad, steering_rate_rps=0.0)

        accel = self._longitudinal(speed, target_speed)
        speed_profile = speed + accel * dt * np.arange(horizon)
        max_curvature = self.vehicle.max_curvature_per_m
        curvature_profile = reference.curvature_at(now + dt * np.arange(horizon))
        curvature_profile = np.clip(curvature_profile, -max_curvature, max_curvature)
        lateral_state = np.array([lateral_error, heading_error, state.steering_rad])
        steering_rate = self._lateral(lateral_state, speed_profile, curvature_profile)
        max_steer = self.vehicle.max_steering_rad
        steer = min(max(state.steering_rad + steering_rate * dt, -max_steer), max_steer)
        return ControlCommand(accel_mps2=accel, steer_rad=steer, steering_rate_rps=steering_rate)

    def _longitudinal(self, speed: float, target_speed: float) -> float:
        cfg = self.config
        held_for_s = cfg.tracking_horizon * cfg.discretization_time_s
        accel = solve_held_input_lqr(
            initial_state=np.array([speed]),
            target_state=np.array([target_speed]),
            q_diag=np.array([cfg.q_longitudinal]),
            r_diag=np.array([cfg.r_longitudinal]),
            a_matrix=np.eye(1),
            b_matrix=np.array([[held_for_s]]),
            affine=np.zeros(1),
        )
        return float(accel[0])

    def _lateral(self, lateral_state: np.ndarray, speed_profile: np.ndarray, curvature_profile: np.ndarray) -> float:
        """Steering rate [rad/s]; lateral_state (3,) = [e_lat m, e_head rad, delta rad]; profiles (N,)."""
        cfg = self.config
        dt, wheelbase = cfg.discretization_time_s, self.vehicle.wheelbase_m
        a_lift, b_lift, g_lift = lift_lateral_dynamics(speed_profile, curvature_profile, dt, wheelbase)
        rate = solve_held_input_lqr(
            initial_state=lateral_state,
            target_state=np.zeros(3),
            q_diag=np.asarray(cfg.q_lateral, dtype=np.float64),
            r_diag=np.array([cfg.r_lateral]),
            a_matrix=a_lift,
            b_matrix=b_lift,
            affine=g_lift,
            angle_indices=(1, 2),
        )
        return float(rate[0])
