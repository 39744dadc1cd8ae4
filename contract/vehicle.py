"""The ego vehicle's geometry and actuator lags (nuPlan's Chrysler Pacifica by default).

Shared by the simulator (dynamics, collisions, scenario placement) and the planners' open-loop
evaluation (the ego footprint around a planned rear-axle pose).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class VehicleParameters:
    """Rigid-body geometry and actuator lags (`PACIFICA`: nuPlan's ego vehicle)."""

    wheelbase_m: float
    width_m: float
    rear_axle_to_front_m: float
    rear_axle_to_rear_m: float
    height_m: float
    max_steering_rad: float
    accel_time_constant_s: float
    steering_time_constant_s: float

    def __post_init__(self) -> None:
        for name in ("wheelbase_m", "width_m", "rear_axle_to_front_m", "rear_axle_to_rear_m", "height_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"VehicleParameters.{name} must be finite and > 0, got {value}")
        if not (0 < self.max_steering_rad < math.pi / 2):
            raise ValueError(f"VehicleParameters.max_steering_rad must be in (0, pi/2), got {self.max_steering_rad}")
        for name in ("accel_time_constant_s", "steering_time_constant_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"VehicleParameters.{name} must be finite and >= 0 (0 = no lag), got {value}")

    @property
    def length_m(self) -> float:
        """Bumper to bumper [m]."""
        return self.rear_axle_to_front_m + self.rear_axle_to_rear_m

    @property
    def rear_axle_to_centre_m(self) -> float:
        """Distance [m] from the rear axle forward to the geometric centre of the footprint."""
        return 0.5 * self.length_m - self.rear_axle_to_rear_m

    @property
    def max_curvature_per_m(self) -> float:
        """Tightest turn the steering limit allows [1/m]."""
        return math.tan(self.max_steering_rad) / self.wheelbase_m


# nuPlan's ego vehicle, a Chrysler Pacifica: the simulator's ego and every planner's footprint.
PACIFICA = VehicleParameters(
    wheelbase_m=3.089, width_m=2.297, rear_axle_to_front_m=4.049, rear_axle_to_rear_m=1.127, height_m=1.777,
    max_steering_rad=math.pi / 3, accel_time_constant_s=0.2, steering_time_constant_s=0.05,
)
