"""The ego motions an ego-motion-conditioned world model is given when the planner imagines.

Imagine-then-act: before planning, the world model rolls the video forward by the planner's
imagined frames. A conditioned world model (world_model/gpt/ego_motion.py) is told the ego's motion
into every frame: [dx_forward_m, dy_left_m, dyaw_rad] from one frame to the next in the ego frame of
the earlier one.
  - Observed frames: their motions come from the observation's ego history (past rear-axle poses),
    interpolated at the frames' times; padding frames and frames outside the history are unknown (NaN).
  - Imagined frames: the motion of a candidate plan, the planner's previous plan (made one planning
    step ago; its poses are interpolated at now + k * frame period and differenced, so only the plan's
    own shape matters, not where it was anchored). Without a previous plan that reaches far enough
    (the first step of an episode), the ego keeps its current speed and yaw rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract import Observation
from data.ego_motion import to_ego_frame


@dataclass(frozen=True)
class PlanRecord:
    """A plan as made: time_s [s] of its observation; waypoints (K, 3) [x m, y m, yaw rad] in the ego
    frame at that time, waypoint k at time_s + (k + 1) * dt_s."""

    time_s: float
    waypoints: np.ndarray
    dt_s: float

    @classmethod
    def of(cls, time_s: float, waypoints: np.ndarray, dt_s: float) -> "PlanRecord":
        """From (K, 2) or (K, 3) waypoints; a missing yaw is the heading of the path."""
        w = np.asarray(waypoints, dtype=np.float64)
        if w.shape[1] == 2:
            path = np.concatenate([np.zeros((1, 2)), w])
            step = np.diff(path, axis=0)
            w = np.concatenate([w, np.arctan2(step[:, 1], step[:, 0])[:, None]], axis=1)
        return cls(float(time_s), w, float(dt_s))

    def pose_at(self, t_s: np.ndarray) -> np.ndarray | None:
        """(N, 3) poses at times t_s (N,) by linear interpolation from the plan's origin (0, 0, 0) at
        time_s; None if any time lies outside [time_s, last waypoint's time]."""
        times = self.time_s + self.dt_s * np.arange(len(self.waypoints) + 1)
        t = np.asarray(t_s, dtype=np.float64)
        if t.min() < times[0] - 1e-9 or t.max() > times[-1] + 1e-9:
            return None
        poses = np.concatenate([np.zeros((1, 3)), self.waypoints])
        poses[:, 2] = np.unwrap(poses[:, 2])
        return np.stack([np.interp(t, times, poses[:, i]) for i in range(3)], axis=1)


def differences(poses_xyyaw: np.ndarray) -> np.ndarray:
    """(N - 1, 3) motions between consecutive poses (N, 3): pose i + 1 in the ego frame of pose i."""
    return np.stack([to_ego_frame(a, b) for a, b in zip(poses_xyyaw[:-1], poses_xyyaw[1:])])


def constant_turn_motions(speed_mps: float, yaw_rate_rps: float, frame_period_s: float, n_frames: int) -> np.ndarray:
    """(n_frames, 3) motions of an ego keeping its speed and yaw rate for n_frames frame periods."""
    ds, dyaw = max(0.0, float(speed_mps)) * frame_period_s, float(yaw_rate_rps) * frame_period_s
    if abs(dyaw) < 1e-9:
        step = np.array([ds, 0.0, 0.0])
    else:
        radius = ds / dyaw
        step = np.array([radius * np.sin(dyaw), radius * (1.0 - np.cos(dyaw)), dyaw])
    return np.tile(step, (n_frames, 1))


def imagined_motions(previous: PlanRecord | None, observation: Observation, frame_period_s: float, n_frames: int) -> np.ndarray:
    """(n_frames, 3) float32 motions into the imagined frames 1..n_frames after the newest observed
    frame (see the module docstring)."""
    now = float(observation.frame_timestamps_s[-1])
    if previous is not None:
        poses = previous.pose_at(now + frame_period_s * np.arange(n_frames + 1))
        if poses is not None:
            return differences(poses).astype(np.float32)
    return constant_turn_motions(observation.speed_mps, observation.yaw_rate_rps, frame_period_s, n_frames).astype(np.float32)


def observed_motions(frame_times_s: list[float | None], observation: Observation) -> np.ndarray:
    """(T, 3) float32 motions into the window's frames at frame_times_s (oldest first; None = a
    padding frame) from the observation's ego history; NaN where unknown (the first frame, padding,
    times outside the history)."""
    hist_t = np.asarray(observation.ego_history_timestamps_s, dtype=np.float64)
    hist = np.asarray(observation.ego_history_xyyaw, dtype=np.float64)
    out = np.full((len(frame_times_s), 3), np.nan, dtype=np.float32)
    if len(hist_t) < 2:
        return out
    yaw = np.unwrap(hist[:, 2])

    def pose(t: float | None) -> np.ndarray | None:
        if t is None or t < hist_t[0] - 1e-6 or t > hist_t[-1] + 1e-6:
            return None
        return np.array([np.interp(t, hist_t, hist[:, 0]), np.interp(t, hist_t, hist[:, 1]), np.interp(t, hist_t, yaw)])

    poses = [pose(t) for t in frame_times_s]
    for f in range(1, len(poses)):
        if poses[f - 1] is not None and poses[f] is not None:
            out[f] = to_ego_frame(poses[f - 1], poses[f])
    return out
