"""What a planner sees: one `Observation` per planning step, one `EpisodeInfo` per episode.

An `Observation` never carries the true future or other agents' states; those go in `privileged`
(a `PrivilegedState`), which the runner fills only for planners that declare `privileged = True`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from contract.checks import finite_float_array, finite_number, read_only, strictly_increasing
from data.command import Command
from data.schema import CameraExtrinsics

if TYPE_CHECKING:  # simulator types, named for readers; the contract never imports the simulator
    from sim_eval.dynamics.vehicle import EgoState
    from sim_eval.scenarios.scenario import Scenario
    from sim_eval.world.state import WorldState


@dataclass(frozen=True)
class PrivilegedState:
    """Ground truth handed to privileged planners (the expert, log replay) at one planning step:
    the scenario (map, route, goal), the world (other agents, traffic lights) and the ego's true state."""

    scenario: "Scenario"
    world: "WorldState"
    ego: "EgoState"

    @property
    def ego_pose_xyyaw(self) -> np.ndarray:
        """(3,) [m, m, rad] the ego's rear-axle pose in the world frame."""
        return np.array([self.ego.x_m, self.ego.y_m, self.ego.yaw_rad])


@dataclass(frozen=True)
class EpisodeInfo:
    """What `Planner.reset` learns about a new episode.

    episode_id: a unique name ("nominal/003/seed0" in the simulator, "neuroncap/7" from the server).
    scenario:   the simulator's scenario, for privileged planners only (None for every other planner).
    """

    episode_id: str
    scenario: "Scenario | None" = None

    def __post_init__(self) -> None:
        if not isinstance(self.episode_id, str) or not self.episode_id:
            raise ValueError(f"EpisodeInfo.episode_id must be a non-empty string, got {self.episode_id!r}")


ROUTE_AHEAD_M = 100.0  # how much of its route the simulator tells a planner [m]


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
    privileged:               ground truth for privileged planners only (None otherwise).
    camera_extrinsics:        the camera's mount on the ego (camera -> ego, data.schema.CameraExtrinsics),
                              or None where the source does not say (what a ground-plane warp needs).
    route_ahead_xy:           (R, 2) [m] the route from the ego onwards in the current ego frame (x
                              forward, y left), in driving order, the first point at (or next to) the
                              ego, or None where the source gives only the command (NeuroNCAP's API).
                              The simulator passes ROUTE_AHEAD_M of it.
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
    privileged: PrivilegedState | None = None
    camera_extrinsics: CameraExtrinsics | None = None
    route_ahead_xy: np.ndarray | None = None

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
            object.__setattr__(self, name, finite_number(getattr(self, name), f"Observation.{name}"))
        frame_times = finite_float_array(self.frame_timestamps_s, "Observation.frame_timestamps_s", (frames.shape[0],))
        strictly_increasing(frame_times, "Observation.frame_timestamps_s")
        if frame_times[-1] > self.time_s + 1e-6:
            raise ValueError(
                f"Observation.frame_timestamps_s ends at {frame_times[-1]} s, after time_s = {self.time_s} s"
            )
        history = finite_float_array(self.ego_history_xyyaw, "Observation.ego_history_xyyaw", (None, 3))
        if len(history) < 1:
            raise ValueError("Observation.ego_history_xyyaw must hold at least the current pose")
        if np.abs(history[-1]).max() > 1e-3:
            raise ValueError(
                f"Observation.ego_history_xyyaw must end with the current pose (0, 0, 0) in the ego frame, "
                f"got {history[-1].tolist()}"
            )
        history_times = finite_float_array(self.ego_history_timestamps_s, "Observation.ego_history_timestamps_s", (len(history),))
        strictly_increasing(history_times, "Observation.ego_history_timestamps_s")
        if abs(history_times[-1] - self.time_s) > 1e-6:
            raise ValueError(
                f"Observation.ego_history_timestamps_s must end at time_s = {self.time_s} s, got {history_times[-1]} s"
            )
        intrinsics = finite_float_array(self.camera_intrinsics, "Observation.camera_intrinsics", (3, 3))
        if intrinsics[0, 0] <= 0 or intrinsics[1, 1] <= 0 or not np.allclose(intrinsics[2], [0.0, 0.0, 1.0]):
            raise ValueError(f"Observation.camera_intrinsics is not a pinhole matrix: {intrinsics.tolist()}")
        try:
            command = Command(int(self.command))
        except (TypeError, ValueError) as error:
            choices = [c.value for c in Command]
            raise ValueError(f"Observation.command must be one of {choices}, got {self.command!r}") from error
        if self.privileged is not None and not isinstance(self.privileged, PrivilegedState):
            raise ValueError(f"Observation.privileged must be a PrivilegedState or None, got {type(self.privileged).__name__}")
        if self.camera_extrinsics is not None and not isinstance(self.camera_extrinsics, CameraExtrinsics):
            raise ValueError(f"Observation.camera_extrinsics must be a data.schema.CameraExtrinsics or None, got {type(self.camera_extrinsics).__name__}")
        object.__setattr__(self, "frames_rgb", read_only(frames))
        object.__setattr__(self, "frame_timestamps_s", read_only(frame_times))
        object.__setattr__(self, "ego_history_xyyaw", read_only(history))
        object.__setattr__(self, "ego_history_timestamps_s", read_only(history_times))
        object.__setattr__(self, "camera_intrinsics", read_only(intrinsics))
        object.__setattr__(self, "command", command)
        if self.route_ahead_xy is not None:
            route = finite_float_array(self.route_ahead_xy, "Observation.route_ahead_xy", (None, 2))
            if len(route) < 1:
                raise ValueError("Observation.route_ahead_xy must hold at least one point (R >= 1)")
            object.__setattr__(self, "route_ahead_xy", read_only(route))
