"""Plain containers for the world at one instant: other road users as arrays, the ego as a box.

Footprint corners follow contract.footprint (front-left, rear-left, rear-right, front-right);
the ego's geometry is sim_eval.dynamics.vehicle.VehicleParameters, so there is one source for both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from contract.footprint import box_corners
from contract.vehicle import PACIFICA, VehicleParameters

AgentKind = Literal["vehicle", "pedestrian", "obstacle"]
AGENT_KINDS: tuple[str, ...] = ("vehicle", "pedestrian", "obstacle")
# AgentArrays' fields in declaration order (validation and `select` walk them all).
_AGENT_FIELDS = ("agent_id", "kind", "x_m", "y_m", "yaw_rad", "speed_mps", "accel_mps2", "length_m", "width_m", "height_m")


def box_corners_xy(center_xy: np.ndarray, yaw_rad: np.ndarray, length_m: np.ndarray, width_m: np.ndarray) -> np.ndarray:
    """(A, 4, 2) footprint corners of A oriented boxes (front-left, rear-left, rear-right,
    front-right). center_xy: (A, 2); yaw_rad, length_m, width_m: (A,)."""
    center = np.asarray(center_xy, dtype=np.float64)
    xyyaw = np.concatenate([center, np.asarray(yaw_rad, dtype=np.float64).reshape(-1, 1)], axis=1)
    return box_corners(xyyaw, length_m, width_m)


@dataclass(frozen=True)
class EgoBox:
    """The ego as other agents see it: box centre (m), yaw (rad), speed (m/s), size (m)."""

    center_xy: tuple[float, float]
    yaw_rad: float
    speed_mps: float
    length_m: float
    width_m: float

    def __post_init__(self) -> None:
        vals = (*self.center_xy, self.yaw_rad, self.speed_mps, self.length_m, self.width_m)
        if len(self.center_xy) != 2 or not np.isfinite(vals).all():
            raise ValueError(f"EgoBox fields must be finite, got {vals}")
        if self.length_m <= 0 or self.width_m <= 0:
            raise ValueError("EgoBox size must be > 0")

    @classmethod
    def from_rear_axle(
        cls, x_m: float, y_m: float, yaw_rad: float, speed_mps: float, vehicle: VehicleParameters = PACIFICA
    ) -> "EgoBox":
        """The box of a vehicle whose rear-axle pose is (x_m, y_m, yaw_rad)."""
        off = vehicle.rear_axle_to_centre_m
        return cls(
            center_xy=(float(x_m + off * np.cos(yaw_rad)), float(y_m + off * np.sin(yaw_rad))),
            yaw_rad=float(yaw_rad),
            speed_mps=float(speed_mps),
            length_m=vehicle.length_m,
            width_m=vehicle.width_m,
        )

    def corners_xy(self) -> np.ndarray:
        """(4, 2) footprint corners, counter-clockwise from front-left."""
        return box_corners_xy(
            np.array([self.center_xy]), np.array([self.yaw_rad]), np.array([self.length_m]), np.array([self.width_m])
        )[0]


@dataclass(frozen=True, eq=False)
class AgentArrays:
    """A agents at one instant (all (A,) arrays). Positions are box centres (m), yaw (rad), speed
    along the heading (m/s, >= 0), accel (m/s^2), size (m); kind in AGENT_KINDS."""

    agent_id: np.ndarray
    kind: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray
    yaw_rad: np.ndarray
    speed_mps: np.ndarray
    accel_mps2: np.ndarray
    length_m: np.ndarray
    width_m: np.ndarray
    height_m: np.ndarray

    def __post_init__(self) -> None:
        n = len(np.asarray(self.agent_id))
        for name in _AGENT_FIELDS:
            arr = np.asarray(getattr(self, name))
            if arr.shape != (n,):
                raise ValueError(f"AgentArrays.{name} must have shape ({n},), got {arr.shape}")
            if name == "kind":
                arr = arr.astype("<U10")
                bad = set(arr.tolist()) - set(AGENT_KINDS)
                if bad:
                    raise ValueError(f"AgentArrays.kind has unknown kinds {sorted(bad)}")
            elif name == "agent_id":
                arr = arr.astype(np.int64)
            else:
                arr = arr.astype(np.float64)
                if not np.isfinite(arr).all():
                    raise ValueError(f"AgentArrays.{name} has non-finite values")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.agent_id)

    @classmethod
    def empty(cls) -> "AgentArrays":
        z = np.zeros(0)
        return cls(np.zeros(0, np.int64), np.zeros(0, "<U10"), z, z, z, z, z, z, z, z)

    @property
    def center_xy(self) -> np.ndarray:
        """(A, 2) box centres."""
        return np.stack([self.x_m, self.y_m], axis=1)

    @property
    def velocity_xy(self) -> np.ndarray:
        """(A, 2) world-frame velocity (m/s)."""
        return self.speed_mps[:, None] * np.stack([np.cos(self.yaw_rad), np.sin(self.yaw_rad)], axis=1)

    def corners_xy(self) -> np.ndarray:
        """(A, 4, 2) footprint corners."""
        return box_corners_xy(self.center_xy, self.yaw_rad, self.length_m, self.width_m)

    def select(self, mask: np.ndarray) -> "AgentArrays":
        return AgentArrays(*(getattr(self, f)[mask] for f in _AGENT_FIELDS))


@dataclass(frozen=True, eq=False)
class WorldState:
    """Everything but the ego at time_s: agents (vehicles, pedestrians, obstacles) and light states."""

    time_s: float
    agents: AgentArrays
    light_states: dict[int, str] = field(default_factory=dict)
