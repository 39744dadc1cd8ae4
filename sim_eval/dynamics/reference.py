"""A plan turned into the time-indexed world-frame reference that the tracker follows.

The tracker works in the world frame: a plan is made in the ego frame at plan time and is anchored
to the world with the ego pose of that moment (`ReferenceTrajectory.from_plan`), so it stays put while
the ego moves between planner calls. The ego pose at plan time is prepended as the waypoint at t = 0.

Interpolation separates geometry from timing so that neither spoils the other:
- the path is a cubic spline x(s), y(s) through the distinct waypoints, parametrised by chord length s:
  its tangent gives the heading and its derivatives the curvature, smooth between waypoints;
- progress s(t) is a monotone (PCHIP) interpolant of the cumulative chord length, so a plan that
  slows down and stops never runs backwards or overshoots, and ds/dt is the speed (>= 0).
Both are sampled every `dt_s` (0.1 s). Where the plan stands still the heading is held. A plan's yaw
column is not used: a car cannot yaw without moving, so the heading is the path's tangent (and the
ego's yaw at plan time for a plan that never moves).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline, PchipInterpolator

from contract import Plan, ego_to_world

# Waypoints within this distance of the previous distinct one add no geometry: a stopped plan repeats a
# point, and a learned planner jitters by centimetres around it (a tangent through that jitter is noise).
MIN_SEGMENT_M = 0.05


@dataclass(frozen=True)
class ReferenceTrajectory:
    """Reference sampled on a uniform time grid, world frame.

    times_s (M,) [s] absolute simulation times, uniform step; xy_m (M, 2) [m] rear-axle positions;
    heading_rad (M,) [rad] unwrapped (continuous); speed_mps (M,) [m/s] >= 0; curvature_per_m (M,)
    [1/m] signed, counter-clockwise positive. Queries outside [times_s[0], times_s[-1]] clamp to the ends.
    """

    times_s: np.ndarray
    xy_m: np.ndarray
    heading_rad: np.ndarray
    speed_mps: np.ndarray
    curvature_per_m: np.ndarray

    def __post_init__(self) -> None:
        m = len(self.times_s)
        shapes = {
            "times_s": (m,),
            "xy_m": (m, 2),
            "heading_rad": (m,),
            "speed_mps": (m,),
            "curvature_per_m": (m,),
        }
        for name, shape in shapes.items():
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape or not np.isfinite(value).all():
                raise ValueError(f"ReferenceTrajectory.{name} must be finite with shape {shape}, got {value.shape}")
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        if m < 2 or not (np.diff(self.times_s) > 0).all():
            raise ValueError("ReferenceTrajectory.times_s must hold >= 2 strictly increasing times")

    @classmethod
    def from_plan(
        cls, plan: Plan, plan_pose_xyyaw: np.ndarray, plan_time_s: float, dt_s: float = 0.1
    ) -> "ReferenceTrajectory":
        """Anchor an ego-frame `plan` at the world pose (3,) [m, m, rad] the ego had at `plan_time_s`."""
        waypoints = np.asarray(plan.waypoints, dtype=np.float64)
        if not np.isfinite(waypoints).all() or not (np.isfinite(plan.dt_s) and plan.dt_s > 0):
            raise ValueError("ReferenceTrajectory.from_plan: plan has non-finite values or dt_s <= 0")
        pose = np.asarray(plan_pose_xyyaw, dtype=np.float64)
        world = ego_to_world(waypoints, pose)
        poses_xy = np.vstack([pose[None, :2], world[:, :2]])
        times = plan_time_s + plan.dt_s * np.arange(len(poses_xy))
        return cls.from_world_points(times, poses_xy, float(pose[2]), dt_s)

    @classmethod
    def from_world_points(
        cls, times_s: np.ndarray, xy_m: np.ndarray, standstill_yaw_rad: float, dt_s: float = 0.1
    ) -> "ReferenceTrajectory":
        """Interpolate world-frame waypoints to a `dt_s` grid.

        times_s (W,) [s] strictly increasing, W >= 2; xy_m (W, 2) [m]; standstill_yaw_rad [rad] the
        heading if the points never move (otherwise unused).
        """
        times = np.asarray(times_s, dtype=np.float64)
        xy = np.asarray(xy_m, dtype=np.float64)
        if times.ndim != 1 or len(times) < 2 or not (np.diff(times) > 0).all():
            raise ValueError(f"ReferenceTrajectory: times_s must be (W>=2,) strictly increasing, got {times}")
        if xy.shape != (len(times), 2):
            raise ValueError(f"ReferenceTrajectory: xy_m has shape {xy.shape}, expected ({len(times)}, 2)")
        if not (np.isfinite(xy).all() and np.isfinite(times).all() and np.isfinite(standstill_yaw_rad)):
            raise ValueError("ReferenceTrajectory: waypoints contain non-finite values")
        if not dt_s > 0:
            raise ValueError(f"ReferenceTrajectory: dt_s must be > 0, got {dt_s}")

        # Progress: cumulative chord length, monotone in time.
        chord = np.hypot(*np.diff(xy, axis=0).T)
        progress = np.concatenate([[0.0], np.cumsum(chord)])
        n_steps = int(np.floor((times[-1] - times[0]) / dt_s + 1e-9))
        grid = times[0] + dt_s * np.arange(n_steps + 1)
        if n_steps < 1:
            grid = times[[0, -1]]
        timing = PchipInterpolator(times, progress)
        s_grid = np.clip(timing(grid), 0.0, progress[-1])
        speed = np.maximum(timing.derivative()(grid), 0.0)

        # Geometry: distinct points only.
        keep = [0]
        for index in range(1, len(xy)):
            if np.hypot(*(xy[index] - xy[keep[-1]])) > MIN_SEGMENT_M:
                keep.append(index)
        path_s, path_xy = progress[keep], xy[keep]
        if len(path_s) == 1:
            grid_xy = np.repeat(path_xy, len(grid), axis=0)
            heading = np.full(len(grid), float(standstill_yaw_rad))
            curvature = np.zeros(len(grid))
        else:
            boundary = "not-a-knot" if len(path_s) >= 4 else "natural"
            path = CubicSpline(path_s, path_xy, axis=0, bc_type=boundary)
            s_on_path = np.clip(s_grid, path_s[0], path_s[-1])
            grid_xy = path(s_on_path)
            d1, d2 = path(s_on_path, 1), path(s_on_path, 2)
            heading = np.unwrap(np.arctan2(d1[:, 1], d1[:, 0]))
            norm = np.maximum(np.hypot(d1[:, 0], d1[:, 1]), 1e-9)
            curvature = (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / norm**3
        return cls(times_s=grid, xy_m=grid_xy, heading_rad=heading, speed_mps=speed, curvature_per_m=curvature)

    @property
    def start_time_s(self) -> float:
        return float(self.times_s[0])

    @property
    def end_time_s(self) -> float:
        return float(self.times_s[-1])

    def pose_at(self, time_s: float) -> np.ndarray:
        """(3,) [m, m, rad] reference pose at `time_s` (linear between grid points, clamped at the ends)."""
        return np.array(
            [
                np.interp(time_s, self.times_s, self.xy_m[:, 0]),
                np.interp(time_s, self.times_s, self.xy_m[:, 1]),
                np.interp(time_s, self.times_s, self.heading_rad),
            ]
        )

    def speed_at(self, time_s: float | np.ndarray) -> float | np.ndarray:
        """Reference speed [m/s] at `time_s` (clamped at the ends)."""
        return np.interp(time_s, self.times_s, self.speed_mps)

    def curvature_at(self, time_s: float | np.ndarray) -> float | np.ndarray:
        """Reference curvature [1/m] at `time_s` (clamped at the ends)."""
        return np.interp(time_s, self.times_s, self.curvature_per_m)
