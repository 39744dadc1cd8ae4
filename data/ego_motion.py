"""The densest ego pose stream of a clip, and everything derived from it by interpolation.

Poses live in the clip's local ENU frame (metres, yaw counter-clockwise from +x/east). Speeds,
accelerations and yaw rates are derived from the poses with the same rule for every source
(central differences over +-`half_window_s` of the interpolated stream), so a 2 Hz nuScenes log,
a 10 Hz nuPlan log and the simulator agree on what "speed" means.

What a planner is told about its own motion at time t (its ego status) must not see past t: a
central difference at t reads the poses up to t + 2 * half_window_s, i.e. the first half second of
the very future it is asked to predict, which closed loop never has (the simulator reports the
speed and acceleration it has now). `past_only=True` differences over the window [t - 2h, t]
instead; the planner's windows use it with EGO_STATUS_HALF_WINDOW_S (planner/datamodule.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DERIVATIVE_HALF_WINDOW_S = 0.25
EGO_STATUS_HALF_WINDOW_S = 0.1  # past-only ego status: speed over [t - 0.2 s, t], acceleration over [t - 0.4 s, t]


def wrap_angle(angle_rad: np.ndarray | float) -> np.ndarray | float:
    """Wrap to [-pi, pi)."""
    return (np.asarray(angle_rad) + np.pi) % (2 * np.pi) - np.pi


@dataclass(frozen=True)
class PoseStream:
    """Ego poses sorted by time.

    timestamps_us: (N,) int64, strictly increasing.
    xyz_m: (N, 3) float64, local ENU frame.
    yaw_rad: (N,) float64, unwrapped (continuous; differences are true heading changes).
    rotation_wxyz: (N, 4) float64 unit quaternions of the full rotation when the source has it, else None.
    """

    timestamps_us: np.ndarray
    xyz_m: np.ndarray
    yaw_rad: np.ndarray
    rotation_wxyz: np.ndarray | None = None

    def __post_init__(self) -> None:
        ts = np.asarray(self.timestamps_us, dtype=np.int64)
        xyz = np.asarray(self.xyz_m, dtype=np.float64)
        yaw = np.asarray(self.yaw_rad, dtype=np.float64)
        n = len(ts)
        if n < 2:
            raise ValueError(f"PoseStream needs at least 2 poses, got {n}")
        if ts.ndim != 1 or np.any(np.diff(ts) <= 0):
            raise ValueError("PoseStream.timestamps_us must be 1-D and strictly increasing")
        if xyz.shape != (n, 3) or yaw.shape != (n,):
            raise ValueError(f"PoseStream shapes disagree: xyz {xyz.shape}, yaw {yaw.shape}, n={n}")
        if not (np.isfinite(xyz).all() and np.isfinite(yaw).all()):
            raise ValueError("PoseStream contains NaN or inf poses")
        object.__setattr__(self, "timestamps_us", ts)
        object.__setattr__(self, "xyz_m", xyz)
        object.__setattr__(self, "yaw_rad", yaw)
        if self.rotation_wxyz is not None:
            rot = np.asarray(self.rotation_wxyz, dtype=np.float64)
            if rot.shape != (n, 4) or not np.isfinite(rot).all():
                raise ValueError(f"PoseStream.rotation_wxyz must be finite (N, 4), got {rot.shape}")
            object.__setattr__(self, "rotation_wxyz", rot)

    @classmethod
    def from_unsorted(
        cls,
        timestamps_us: np.ndarray,
        xyz_m: np.ndarray,
        yaw_rad: np.ndarray,
        rotation_wxyz: np.ndarray | None = None,
    ) -> "PoseStream":
        """Sort by time, drop duplicate timestamps (keep the first) and unwrap yaw."""
        ts = np.asarray(timestamps_us, dtype=np.int64)
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        keep = np.concatenate([[True], np.diff(ts) > 0])
        idx = order[keep]
        rot = None if rotation_wxyz is None else np.asarray(rotation_wxyz, dtype=np.float64)[idx]
        yaw = np.unwrap(np.asarray(yaw_rad, dtype=np.float64)[idx])
        return cls(ts[keep], np.asarray(xyz_m, dtype=np.float64)[idx], yaw, rot)

    def __len__(self) -> int:
        return len(self.timestamps_us)

    @property
    def start_us(self) -> int:
        return int(self.timestamps_us[0])

    @property
    def end_us(self) -> int:
        return int(self.timestamps_us[-1])

    def _t_s(self, t_us: np.ndarray | int) -> np.ndarray:
        return (np.asarray(t_us, dtype=np.float64) - self.timestamps_us[0]) * 1e-6

    def pose_at(self, t_us: np.ndarray | int) -> np.ndarray:
        """Interpolated (..., 4) [x m, y m, z m, yaw rad (unwrapped)] at `t_us`, clamped to the stream."""
        t = self._t_s(t_us)
        ref = self._t_s(self.timestamps_us)
        cols = [np.interp(t, ref, self.xyz_m[:, i]) for i in range(3)]
        cols.append(np.interp(t, ref, self.yaw_rad))
        return np.stack(cols, axis=-1)

    def velocity_xy_at(self, t_us: np.ndarray | int, half_window_s: float = DERIVATIVE_HALF_WINDOW_S, past_only: bool = False) -> np.ndarray:
        """(..., 2) world-frame velocity [m/s] by central differences (one-sided at the ends; past_only:
        backward differences over [t - 2 half_window_s, t])."""
        lo, hi = self._window(t_us, half_window_s, past_only)
        dt = (hi - lo) * 1e-6
        return (self.pose_at(hi)[..., :2] - self.pose_at(lo)[..., :2]) / np.maximum(dt, 1e-6)[..., None]

    def speed_at(self, t_us: np.ndarray | int, half_window_s: float = DERIVATIVE_HALF_WINDOW_S, past_only: bool = False) -> np.ndarray:
        """(...) planar speed [m/s]."""
        return np.linalg.norm(self.velocity_xy_at(t_us, half_window_s, past_only), axis=-1)

    def yaw_rate_at(self, t_us: np.ndarray | int, half_window_s: float = DERIVATIVE_HALF_WINDOW_S, past_only: bool = False) -> np.ndarray:
        """(...) yaw rate [rad/s], counter-clockwise positive."""
        lo, hi = self._window(t_us, half_window_s, past_only)
        dt = (hi - lo) * 1e-6
        return (self.pose_at(hi)[..., 3] - self.pose_at(lo)[..., 3]) / np.maximum(dt, 1e-6)

    def accel_lon_at(self, t_us: np.ndarray | int, half_window_s: float = DERIVATIVE_HALF_WINDOW_S, past_only: bool = False) -> np.ndarray:
        """(...) longitudinal acceleration [m/s^2]: d(velocity)/dt projected on the heading (past_only:
        from the poses in [t - 4 half_window_s, t])."""
        lo, hi = self._window(t_us, half_window_s, past_only)
        dt = (hi - lo) * 1e-6
        dv = self.velocity_xy_at(hi, half_window_s, past_only) - self.velocity_xy_at(lo, half_window_s, past_only)
        acc = dv / np.maximum(dt, 1e-6)[..., None]
        yaw = self.pose_at(t_us)[..., 3]
        return acc[..., 0] * np.cos(yaw) + acc[..., 1] * np.sin(yaw)

    def _window(self, t_us: np.ndarray | int, half_window_s: float, past_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi] [us] of a difference at t: t -+ h, or [t - 2h, t] when past_only (clamped to the
        stream: one-sided at its ends, where a past-only window at the first pose reads forward)."""
        t = np.asarray(t_us, dtype=np.float64)
        h = half_window_s * 1e6
        lo = np.clip(t - 2 * h if past_only else t - h, self.start_us, self.end_us)
        hi = np.clip(t if past_only else t + h, self.start_us, self.end_us)
        hi = np.where(hi - lo < 1.0, np.clip(lo + 2 * h, self.start_us, self.end_us), hi)
        lo = np.where(hi - lo < 1.0, np.clip(hi - 2 * h, self.start_us, self.end_us), lo)
        return lo, hi

    def in_ego_frame(self, t0_us: int, t_us: np.ndarray) -> np.ndarray:
        """Poses at `t_us` (K,) expressed in the ego frame at `t0_us`: (K, 3) [x forward m, y left m, yaw rad]."""
        origin = self.pose_at(t0_us)
        pts = self.pose_at(t_us)
        return to_ego_frame(origin[[0, 1, 3]], pts[..., [0, 1, 3]])

    def future_path_xy(self, t0_us: int) -> np.ndarray:
        """(N, 2) the driven path from `t0_us` to the end of the stream (first point at t0)."""
        later = self.timestamps_us > t0_us
        start = self.pose_at(t0_us)[None, :2]
        return np.concatenate([start, self.xyz_m[later, :2]], axis=0)


def to_ego_frame(origin_xyyaw: np.ndarray, poses_xyyaw: np.ndarray) -> np.ndarray:
    """Express world poses (..., 3) in the frame of `origin_xyyaw` (3,): x forward, y left, yaw relative."""
    origin = np.asarray(origin_xyyaw, dtype=np.float64)
    poses = np.asarray(poses_xyyaw, dtype=np.float64)
    c, s = np.cos(origin[2]), np.sin(origin[2])
    dx = poses[..., 0] - origin[0]
    dy = poses[..., 1] - origin[1]
    return np.stack([c * dx + s * dy, -s * dx + c * dy, poses[..., 2] - origin[2]], axis=-1)


def from_ego_frame(origin_xyyaw: np.ndarray, local_xyyaw: np.ndarray) -> np.ndarray:
    """Inverse of `to_ego_frame`."""
    origin = np.asarray(origin_xyyaw, dtype=np.float64)
    local = np.asarray(local_xyyaw, dtype=np.float64)
    c, s = np.cos(origin[2]), np.sin(origin[2])
    x = origin[0] + c * local[..., 0] - s * local[..., 1]
    y = origin[1] + s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2] + origin[2]], axis=-1)


def yaw_from_quaternion_wxyz(q: np.ndarray) -> np.ndarray:
    """Heading (rotation about z) of unit quaternions (..., 4) [w, x, y, z]."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
