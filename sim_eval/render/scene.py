"""What the renderers draw: a plain, world-agnostic description of one instant.

The simulator's world converts its state into a `RenderScene`; the camera and bird's-eye-view
renderers only ever see this, so they can be tested with hand-placed geometry. All coordinates are
world-frame metres (x, y on the ground plane, z up), angles in radians (yaw counter-clockwise from +x).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

RGB = tuple[int, int, int]


def as_points_xy(name: str, xy: np.ndarray, min_points: int = 1) -> np.ndarray:
    """Validate and return `xy` as a finite (N, 2) float64 array (N >= min_points)."""
    arr = np.asarray(xy, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < min_points:
        raise ValueError(f"{name} must have shape (N>={min_points}, 2), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite coordinates")
    return arr


@dataclass(frozen=True)
class GroundPolygon:
    """A flat ground surface (lane, junction, shoulder, grass patch), drawn before everything else.

    polygon_xy: (N, 3+ vertices, 2) world metres, simple polygon, either orientation.
    """

    polygon_xy: np.ndarray
    color: RGB = (70, 70, 74)
    kind: Literal["road", "junction", "sidewalk", "grass"] = "road"

    def __post_init__(self) -> None:
        object.__setattr__(self, "polygon_xy", as_points_xy("GroundPolygon.polygon_xy", self.polygon_xy, 3))


@dataclass(frozen=True)
class Marking:
    """A painted line on the ground along a polyline.

    polyline_xy: (N>=2, 2) world metres. dash_m: (on, off) lengths in metres, or None for a solid line.
    Dash phase is measured in arc length from the polyline's first point, so it is stable over time
    (dashes are what make forward motion visible in the camera).
    """

    polyline_xy: np.ndarray
    width_m: float = 0.15
    color: RGB = (235, 235, 235)
    dash_m: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "polyline_xy", as_points_xy("Marking.polyline_xy", self.polyline_xy, 2))
        if self.width_m <= 0:
            raise ValueError(f"Marking.width_m must be > 0, got {self.width_m}")
        if self.dash_m is not None and (self.dash_m[0] <= 0 or self.dash_m[1] < 0):
            raise ValueError(f"Marking.dash_m must be (on>0, off>=0), got {self.dash_m}")


@dataclass(frozen=True)
class Box:
    """An oriented 3D box standing on the ground: vehicles, pedestrians, static obstacles.

    center_xy: world metres; yaw: rad; length along heading, width across, height up (metres).
    brake_on lights the two rear lamps of a vehicle.
    """

    center_xy: tuple[float, float]
    yaw_rad: float
    length_m: float
    width_m: float
    height_m: float
    color: RGB = (30, 80, 160)
    kind: Literal["vehicle", "pedestrian", "obstacle"] = "vehicle"
    brake_on: bool = False

    def __post_init__(self) -> None:
        vals = (*self.center_xy, self.yaw_rad, self.length_m, self.width_m, self.height_m)
        if not np.isfinite(vals).all():
            raise ValueError(f"Box has non-finite fields: {vals}")
        if min(self.length_m, self.width_m, self.height_m) <= 0:
            raise ValueError("Box dimensions must be > 0")

    def corners_xy(self) -> np.ndarray:
        """(4, 2) ground-footprint corners, counter-clockwise from front-left."""
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        hl, hw = self.length_m / 2, self.width_m / 2
        local = np.array([[hl, hw], [-hl, hw], [-hl, -hw], [hl, -hw]])
        rot = np.array([[c, -s], [s, c]])
        return local @ rot.T + np.asarray(self.center_xy)


@dataclass(frozen=True)
class TrafficLightHead:
    """A traffic light head on a pole. position_xyz: the lamp housing centre (world metres);
    facing_yaw_rad: direction the lamps face (towards the traffic it controls)."""

    position_xyz: tuple[float, float, float]
    facing_yaw_rad: float
    state: Literal["red", "yellow", "green", "off"]


@dataclass(frozen=True)
class RenderScene:
    """Everything visible at one instant, plus the ego pose the camera is mounted on.

    ego_pose_xyyaw: (x m, y m, yaw rad) of the ego's rear axle in the world frame.
    """

    ego_pose_xyyaw: tuple[float, float, float]
    ground: tuple[GroundPolygon, ...] = ()
    markings: tuple[Marking, ...] = ()
    boxes: tuple[Box, ...] = ()
    lights: tuple[TrafficLightHead, ...] = ()
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.ego_pose_xyyaw) != 3 or not np.isfinite(self.ego_pose_xyyaw).all():
            raise ValueError(f"ego_pose_xyyaw must be 3 finite numbers, got {self.ego_pose_xyyaw}")
