"""Ego vehicle: parameters, state and the kinematic bicycle that moves it (as nuPlan's motion model).

The state is referenced at the centre of the rear axle. One step is forward Euler on
    x' = v cos(yaw),  y' = v sin(yaw),  yaw' = v tan(steering) / wheelbase,  v' = accel
with the acceleration and steering actuators behind first-order lags. The lags are discretised
exactly (zero-order hold): after one time constant a step command has reached 1 - 1/e = 63.2 % at any
dt, and the 0.05 s steering lag stays stable at the 0.1 s physics step (nuPlan's dt / (dt + tau)
update reaches only 55.6 % after one time constant at dt = 0.1 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from contract.vehicle import PACIFICA, VehicleParameters


@dataclass(frozen=True)
class EgoState:
    """Ego state at the rear-axle centre, world frame.

    x_m, y_m [m]; yaw_rad [rad] wrapped to [-pi, pi); speed_mps [m/s] along the heading (negative only
    when reversing is enabled); accel_mps2 [m/s^2] the longitudinal acceleration applied over the
    last step; steering_rad [rad] front-wheel angle; yaw_rate_rps [rad/s] = v tan(steering) / wheelbase;
    time_s [s] simulation time.
    """

    x_m: float
    y_m: float
    yaw_rad: float
    speed_mps: float
    accel_mps2: float = 0.0
    steering_rad: float = 0.0
    yaw_rate_rps: float = 0.0
    time_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("x_m", "y_m", "yaw_rad", "speed_mps", "accel_mps2", "steering_rad", "yaw_rate_rps", "time_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise ValueError(f"EgoState.{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def pose_xyyaw(self) -> np.ndarray:
        """(3,) [m, m, rad] rear-axle pose in the world frame."""
        return np.array([self.x_m, self.y_m, self.yaw_rad])

    def centre_xyyaw(self, vehicle: VehicleParameters) -> np.ndarray:
        """(3,) [m, m, rad] pose of the footprint's geometric centre (for boxes and collision checks)."""
        offset = vehicle.rear_axle_to_centre_m
        return np.array(
            [self.x_m + offset * math.cos(self.yaw_rad), self.y_m + offset * math.sin(self.yaw_rad), self.yaw_rad]
        )


def wrap_angle(angle_rad: float) -> float:
    """Wrap to [-pi, pi)."""
    return (angle_rad + math.pi) % (2 * math.pi) - math.pi


def lag_fraction(dt_s: float, time_constant_s: float) -> float:
    """Fraction of the gap to its command that a first-order lag closes in dt_s (exact, zero-order hold)."""
    if time_constant_s == 0:
        return 1.0
    return 1.0 - math.exp(-dt_s / time_constant_s)


class KinematicBicycle:
    """Kinematic bicycle at the rear axle with lagged acceleration and steering actuators.

    allow_reverse: if False (default) the speed is clamped at 0 and the car stays held there by its
    brakes; the reported acceleration of that step is then the realised one, (0 - v) / dt, so the
    actuator state cannot wind up while the car stands.
    """

    def __init__(self, vehicle: VehicleParameters | None = None, allow_reverse: bool = False) -> None:
        self.vehicle = vehicle if vehicle is not None else PACIFICA
        self.allow_reverse = allow_reverse

    def step(self, state: EgoState, accel_cmd: float, steer_cmd: float, dt: float) -> EgoState:
        """Advance `state` by `dt` [s] under an acceleration command [m/s^2] and a steering-angle command [rad]."""
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"KinematicBicycle.step: dt must be finite and > 0, got {dt}")
        if not (math.isfinite(accel_cmd) and math.isfinite(steer_cmd)):
            raise ValueError(
                f"KinematicBicycle.step: commands must be finite, got accel={accel_cmd}, steer={steer_cmd}"
            )
        vehicle = self.vehicle
        max_steer = vehicle.max_steering_rad

        accel = state.accel_mps2 + lag_fraction(dt, vehicle.accel_time_constant_s) * (accel_cmd - state.accel_mps2)
        steer_target = min(max(steer_cmd, -max_steer), max_steer)
        steering = state.steering_rad + lag_fraction(dt, vehicle.steering_time_constant_s) * (
            steer_target - state.steering_rad
        )
        steering = min(max(steering, -max_steer), max_steer)

        v, yaw = state.speed_mps, state.yaw_rad
        speed = v + accel * dt
        if not self.allow_reverse and speed < 0.0:
            speed = 0.0
            accel = -v / dt
        # Forward Euler: pose derivatives at the current state, speed driven by the (lagged) applied accel.
        return EgoState(
            x_m=state.x_m + v * math.cos(yaw) * dt,
            y_m=state.y_m + v * math.sin(yaw) * dt,
            yaw_rad=wrap_angle(yaw + v * math.tan(state.steering_rad) / vehicle.wheelbase_m * dt),
            speed_mps=speed,
            accel_mps2=accel,
            steering_rad=steering,
            yaw_rate_rps=speed * math.tan(steering) / vehicle.wheelbase_m,
            time_s=state.time_s + dt,
        )
