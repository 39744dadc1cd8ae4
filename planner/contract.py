"""What a planner sees and what it returns, and how the simulator judges a returned plan.

Frames: the *ego frame* is the rear-axle pose of the ego at observation time, x forward, y left,
yaw counter-clockwise [m, m, rad]. The *world frame* is the simulator's (or log's) fixed frame.

An `Observation` never carries the true future or other agents' states; those go in `privileged`,
which the runner fills only for planners with `privileged = True`.

A `Plan` is untrusted planner output. Its constructor checks only that it is a Plan at all (array
types, rank, width); whether its values are usable (finite, K waypoints, plausible magnitudes) is
judged by `validate_plan`, which returns a reason instead of raising so that the runner can record
"returned NaN" apart from "raised" and carry on.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data.command import Command

# Sanity bounds for validate_plan: no 8 s plan reaches 200 m, and 70 m/s is 252 km/h.
MAX_ABS_WAYPOINT_M = 200.0
MAX_IMPLIED_SPEED_MPS = 70.0


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Observation:
    """Everything a (non-privileged) planner may use at one planning step.

    frames_rgb:               (N, H, W, 3) uint8, oldest first, newest last (the current frame).
    frame_timestamps_s:       (N,) [s] strictly increasing, the last <= time_s.
    ego_history_xyyaw:        (P, 3) [m, m, rad] past rear-axle poses in the current ego frame, oldest
                              first; the last row is the current pose, (0, 0, 0).
    ego_history_timestamps_s: (P,) [s] strictly increasing, the last == time_s.
    speed_mps, accel_mps2, yaw_rate_rps: current longitudinal speed [m/s], acceleration [m/s^2],
                              yaw rate [rad/s] (counter-clockwise positive).
    command:                  high-level route command (RIGHT 0, LEFT 1, STRAIGHT 2); ints are accepted.
    camera_intrinsics:        (3, 3) pinhole matrix of `frames_rgb` in pixels.
    time_s:                   [s] simulation time of this observation.
    privileged:               ground truth for privileged baselines only (None otherwise).
    """

    frames_rgb: np.ndarray
    frame_timestamps_s: np.ndarray
    ego_history_xyyaw: np.ndarray
    ego_history_timestamps_s: np.ndarray
    speed_mps: float
    accel_mps2: float
    yaw_rate_rps: float
    command: Command
    camera_intrinsics: np.ndarray
    time_s: float
    privileged: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        frames = self.frames_rgb
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"Observation.frames_rgb must be a (N, H, W, 3) uint8 array, got "
                f"{getattr(frames, 'shape', type(frames))} {getattr(frames, 'dtype', '')}"
            )
        if frames.shape[0] < 1:
            raise ValueError("Observation.frames_rgb must hold at least one frame")
        for name in ("speed_mps", "accel_mps2", "yaw_rate_rps", "time_s"):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value):
                raise ValueError(f"Observation.{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        frame_times = _finite_float_array(self.frame_timestamps_s, "frame_timestamps_s", (frames.shape[0],))
        _check_increasing(frame_times, "frame_timestamps_s")
        if frame_times[-1] > self.time_s + 1e-6:
            raise ValueError(
                f"Observation.frame_timestamps_s ends at {frame_times[-1]} s, after time_s = {self.time_s} s"
            )
        history = _finite_float_array(self.ego_history_xyyaw, "ego_history_xyyaw", (None, 3))
        if len(history) < 1:
            raise ValueError("Observation.ego_history_xyyaw must hold at least the current pose")
        if np.abs(history[-1]).max() > 1e-3:
            raise ValueError(
                f"Observation.ego_history_xyyaw must end with the current pose (0, 0, 0) in the ego frame, "
                f"got {history[-1].tolist()}"
            )
        history_times = _finite_float_array(self.ego_history_timestamps_s, "ego_history_timestamps_s", (len(history),))
        _check_increasing(history_times, "ego_history_timestamps_s")
        if abs(history_times[-1] - self.time_s) > 1e-6:
            raise ValueError(
                f"Observation.ego_history_timestamps_s must end at time_s = {self.time_s} s, got {history_times[-1]} s"
            )
        intrinsics = _finite_float_array(self.camera_intrinsics, "camera_intrinsics", (3, 3))
        if intrinsics[0, 0] <= 0 or intrinsics[1, 1] <= 0 or not np.allclose(intrinsics[2], [0.0, 0.0, 1.0]):
            raise ValueError(f"Observation.camera_intrinsics is not a pinhole matrix: {intrinsics.tolist()}")
        try:
            command = Command(int(self.command))
        except (TypeError, ValueError) as error:
            choices = [c.value for c in Command]
            raise ValueError(f"Observation.command must be one of {choices}, got {self.command!r}") from error
        if self.privileged is not None and not isinstance(self.privileged, dict):
            raise ValueError(f"Observation.privileged must be a dict or None, got {type(self.privileged).__name__}")
        object.__setattr__(self, "frames_rgb", _read_only(frames))
        object.__setattr__(self, "frame_timestamps_s", _read_only(frame_times))
        object.__setattr__(self, "ego_history_xyyaw", _read_only(history))
        object.__setattr__(self, "ego_history_timestamps_s", _read_only(history_times))
        object.__setattr__(self, "camera_intrinsics", _read_only(intrinsics))
        object.__setattr__(self, "command", command)


@dataclass(frozen=True)
class Plan:
    """K future rear-axle waypoints in the ego frame at observation time.

    waypoints: (K, 2) [m, m] or (K, 3) [m, m, rad] floating point, x forward, y left, optional yaw;
               waypoint k (0-based) is the pose at time_s + (k + 1) * dt_s.
    dt_s:      [s] spacing of the waypoints.
    extras:    anything to log (predicted frames, samples, scores); never read by the simulator.
    """

    waypoints: np.ndarray
    dt_s: float
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = self.waypoints
        if not isinstance(w, np.ndarray) or not np.issubdtype(w.dtype, np.floating):
            raise TypeError(
                f"Plan.waypoints must be a floating-point numpy array, got {type(w).__name__} "
                f"{getattr(w, 'dtype', '')}"
            )
        if w.ndim != 2 or w.shape[1] not in (2, 3):
            raise ValueError(f"Plan.waypoints must be (K, 2) or (K, 3), got shape {w.shape}")
        if not _is_real(self.dt_s):
            raise TypeError(f"Plan.dt_s must be a number, got {self.dt_s!r}")
        if not isinstance(self.extras, dict):
            raise TypeError(f"Plan.extras must be a dict, got {type(self.extras).__name__}")
        object.__setattr__(self, "waypoints", _read_only(w.copy()))
        object.__setattr__(self, "dt_s", float(self.dt_s))

    @property
    def num_waypoints(self) -> int:
        return int(self.waypoints.shape[0])

    @property
    def has_yaw(self) -> bool:
        return self.waypoints.shape[1] == 3

    @property
    def times_s(self) -> np.ndarray:
        """(K,) [s] waypoint times relative to the observation."""
        return self.dt_s * np.arange(1, self.num_waypoints + 1)


def validate_plan(
    plan: object,
    expected_k: int,
    expected_dt_s: float | None = None,
    max_abs_m: float = MAX_ABS_WAYPOINT_M,
    max_speed_mps: float = MAX_IMPLIED_SPEED_MPS,
) -> str | None:
    """Why `plan` cannot be executed, or None if it can.

    Checks: it is a Plan; K == expected_k; dt_s finite, > 0 and (if given) == expected_dt_s; all values
    finite; no waypoint farther than max_abs_m from the ego; no step (from the ego, then between
    waypoints) faster than max_speed_mps.
    """
    if not isinstance(plan, Plan):
        return f"planner returned {type(plan).__name__}, not a Plan"
    w = plan.waypoints  # rank, width and dtype were checked when the Plan was built
    if w.shape[0] != expected_k:
        return f"plan has {w.shape[0]} waypoints, expected {expected_k}"
    if not (math.isfinite(plan.dt_s) and plan.dt_s > 0):
        return f"dt_s must be finite and > 0, got {plan.dt_s}"
    if expected_dt_s is not None and abs(plan.dt_s - expected_dt_s) > 1e-6:
        return f"plan dt_s is {plan.dt_s} s, expected {expected_dt_s} s"
    bad_rows = np.flatnonzero(~np.isfinite(w).all(axis=1))
    if len(bad_rows):
        kinds = "NaN" if np.isnan(w).any() else "inf"
        return f"waypoints contain {kinds} at rows {bad_rows.tolist()}"
    distance = np.hypot(w[:, 0], w[:, 1])
    if distance.max() > max_abs_m:
        row = int(distance.argmax())
        return f"waypoint {row} is {distance[row]:.1f} m from the ego (limit {max_abs_m} m)"
    steps = np.diff(np.vstack([np.zeros((1, 2)), w[:, :2]]), axis=0)
    speeds = np.hypot(steps[:, 0], steps[:, 1]) / plan.dt_s
    if speeds.max() > max_speed_mps:
        row = int(speeds.argmax())
        return f"step to waypoint {row} implies {speeds[row]:.1f} m/s (limit {max_speed_mps} m/s)"
    return None


def ego_to_world(points_ego: np.ndarray, ego_pose_xyyaw: np.ndarray) -> np.ndarray:
    """Ego-frame points or poses -> world frame.

    points_ego: (..., 2) [m, m] or (..., 3) [m, m, rad] in the frame of `ego_pose_xyyaw` (3,) [m, m, rad]
    (a world-frame pose). Yaw is added, not wrapped. Returns the same shape.
    """
    points = np.asarray(points_ego, dtype=np.float64)
    x0, y0, yaw0 = _pose(ego_pose_xyyaw)
    cos, sin = math.cos(yaw0), math.sin(yaw0)
    out = np.empty_like(points)
    out[..., 0] = x0 + cos * points[..., 0] - sin * points[..., 1]
    out[..., 1] = y0 + sin * points[..., 0] + cos * points[..., 1]
    if points.shape[-1] == 3:
        out[..., 2] = points[..., 2] + yaw0
    return out


def world_to_ego(points_world: np.ndarray, ego_pose_xyyaw: np.ndarray) -> np.ndarray:
    """Inverse of `ego_to_world`: world points (..., 2) or poses (..., 3) -> the ego frame of `ego_pose_xyyaw`."""
    points = np.asarray(points_world, dtype=np.float64)
    x0, y0, yaw0 = _pose(ego_pose_xyyaw)
    cos, sin = math.cos(yaw0), math.sin(yaw0)
    dx, dy = points[..., 0] - x0, points[..., 1] - y0
    out = np.empty_like(points)
    out[..., 0] = cos * dx + sin * dy
    out[..., 1] = -sin * dx + cos * dy
    if points.shape[-1] == 3:
        out[..., 2] = points[..., 2] - yaw0
    return out


class Planner(abc.ABC):
    """A driving policy. The runner calls `reset` once per episode, then `plan` at the planning rate.

    `privileged = True` marks baselines that may read `Observation.privileged` (ground truth); scores
    of privileged planners are reported apart.
    """

    name: str = "planner"
    privileged: bool = False

    @abc.abstractmethod
    def reset(self, episode_info: dict[str, Any]) -> None:
        """Forget the previous episode. episode_info: scenario id, seed, route and similar metadata."""

    @abc.abstractmethod
    def plan(self, observation: Observation) -> Plan:
        """Waypoints for the ego from this observation."""


def _pose(pose_xyyaw: np.ndarray) -> tuple[float, float, float]:
    pose = np.asarray(pose_xyyaw, dtype=np.float64)
    if pose.shape != (3,) or not np.isfinite(pose).all():
        raise ValueError(f"ego_pose_xyyaw must be a finite (3,) [x, y, yaw], got {pose}")
    return float(pose[0]), float(pose[1]), float(pose[2])


def _finite_float_array(value: object, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"Observation.{name} must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        expected = "(" + ", ".join("N" if want is None else str(want) for want in shape) + ")"
        raise ValueError(f"Observation.{name} must have shape {expected}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"Observation.{name} contains non-finite values")
    return array


def _check_increasing(times: np.ndarray, name: str) -> None:
    if len(times) > 1 and not (np.diff(times) > 0).all():
        raise ValueError(f"Observation.{name} must be strictly increasing, got {times.tolist()}")
