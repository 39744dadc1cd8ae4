"""The unified driving clip: what every source converts to and every later stage reads.

A clip is a run of front-camera frames with the ego's motion and the high-level command, in one
schema for nuScenes, nuPlan, OpenDV-YouTube and the simulator. Poses live in a local ENU frame whose
origin is the first pose of the clip (`origin_global` says where that is in the source's frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from data.command import Command, command_from_route
from data.ego_motion import PoseStream

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the stored (resized) frames, in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"invalid intrinsics {self}")

    def matrix(self) -> np.ndarray:
        """(3, 3) K matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> "CameraIntrinsics":
        k = np.asarray(k, dtype=np.float64)
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), int(width), int(height))

    def resized(self, width: int, height: int) -> "CameraIntrinsics":
        """Intrinsics after resizing the whole image (no crop) to `width` x `height`."""
        sx, sy = width / self.width, height / self.height
        # Pixel centres: continuous coordinate u maps to (u + 0.5) * s - 0.5.
        return CameraIntrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, width, height
        )

    def to_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("fx", "fy", "cx", "cy", "width", "height")}


@dataclass(frozen=True)
class CameraExtrinsics:
    """Where the camera sits on the ego: the camera-to-ego rigid transform, p_ego = R @ p_cam + t.

    rotation_wxyz: unit quaternion (w, x, y, z) of R, which turns camera-frame vectors into the ego frame.
    translation_m: lens position t in the ego frame [m].
    Ego frame: x forward, y left, z up, origin at the centre of the rear axle projected onto the ground
    (z = 0 is the road surface under the car), as in nuScenes `calibrated_sensor` and nuPlan's `camera`
    table (both give this camera-to-ego transform) and in the simulator (sim_eval.render.camera_model).
    Camera frame (OpenCV optical): x right, y down, z forward along the optical axis, origin at the lens.
    A level forward camera has R = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]] (wxyz 0.5, -0.5, 0.5, -0.5).
    """

    rotation_wxyz: tuple[float, float, float, float]
    translation_m: tuple[float, float, float]

    def __post_init__(self) -> None:
        q = np.asarray(self.rotation_wxyz, dtype=np.float64)
        t = np.asarray(self.translation_m, dtype=np.float64)
        if q.shape != (4,) or t.shape != (3,) or not (np.isfinite(q).all() and np.isfinite(t).all()):
            raise ValueError(f"CameraExtrinsics needs a finite (4,) rotation_wxyz and (3,) translation_m, got {self}")
        norm = float(np.linalg.norm(q))
        if abs(norm - 1.0) > 1e-3:
            raise ValueError(f"CameraExtrinsics.rotation_wxyz must be a unit quaternion, got norm {norm:.6f}")
        if abs(norm - 1.0) > 1e-12:  # leave normalised input bit-exact, so store round trips are exact
            q = q / norm
        object.__setattr__(self, "rotation_wxyz", tuple(float(v) for v in q))
        object.__setattr__(self, "translation_m", tuple(float(v) for v in t))

    @classmethod
    def from_mount(
        cls, height_m: float, forward_m: float = 0.0, lateral_m: float = 0.0, pitch_rad: float = 0.0
    ) -> "CameraExtrinsics":
        """A forward camera `height_m` above the ground, `forward_m` ahead of and `lateral_m` left of the
        rear axle, its optical axis tilted down by `pitch_rad` (no yaw, no roll)."""
        cp, sp = np.cos(pitch_rad), np.sin(pitch_rad)
        # Columns: the camera's x (right), y (down) and z (optical axis) in ego coordinates.
        rot = np.array([[0.0, -sp, cp], [-1.0, 0.0, 0.0], [0.0, -cp, -sp]])
        return cls(quaternion_wxyz_from_matrix(rot), (float(forward_m), float(lateral_m), float(height_m)))

    def rotation_matrix(self) -> np.ndarray:
        """(3, 3) R, camera -> ego."""
        w, x, y, z = self.rotation_wxyz
        return np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ])

    @property
    def height_m(self) -> float:
        """Lens height above the ground [m]."""
        return self.translation_m[2]

    @property
    def pitch_rad(self) -> float:
        """Angle of the optical axis below the horizontal [rad]; positive = looking down."""
        axis_z = float(self.rotation_matrix()[2, 2])  # ego z of the optical axis
        return float(np.arcsin(np.clip(-axis_z, -1.0, 1.0)))

    def to_dict(self) -> dict[str, list[float]]:
        return {"rotation_wxyz": list(self.rotation_wxyz), "translation_m": list(self.translation_m)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CameraExtrinsics":
        return cls(tuple(d["rotation_wxyz"]), tuple(d["translation_m"]))


def quaternion_wxyz_from_matrix(rot: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion (w, x, y, z), w >= 0, of a (3, 3) rotation matrix."""
    m = np.asarray(rot, dtype=np.float64)
    # Shepperd's method: start from the largest of the four squared components (stable everywhere).
    diag = np.array([m[0, 0] + m[1, 1] + m[2, 2], m[0, 0], m[1, 1], m[2, 2]])
    k = int(np.argmax([diag[0], 2 * diag[1] - diag[0], 2 * diag[2] - diag[0], 2 * diag[3] - diag[0]]))
    if k == 0:
        w = 0.5 * np.sqrt(max(1.0 + diag[0], 0.0))
        q = np.array([w, (m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w), (m[1, 0] - m[0, 1]) / (4 * w)])
    elif k == 1:
        x = 0.5 * np.sqrt(max(1.0 + 2 * m[0, 0] - diag[0], 0.0))
        q = np.array([(m[2, 1] - m[1, 2]) / (4 * x), x, (m[0, 1] + m[1, 0]) / (4 * x), (m[0, 2] + m[2, 0]) / (4 * x)])
    elif k == 2:
        y = 0.5 * np.sqrt(max(1.0 + 2 * m[1, 1] - diag[0], 0.0))
        q = np.array([(m[0, 2] - m[2, 0]) / (4 * y), (m[0, 1] + m[1, 0]) / (4 * y), y, (m[1, 2] + m[2, 1]) / (4 * y)])
    else:
        z = 0.5 * np.sqrt(max(1.0 + 2 * m[2, 2] - diag[0], 0.0))
        q = np.array([(m[1, 0] - m[0, 1]) / (4 * z), (m[0, 2] + m[2, 0]) / (4 * z), (m[1, 2] + m[2, 1]) / (4 * z), z])
    q = q if q[0] >= 0 else -q
    return tuple(float(v) for v in q / np.linalg.norm(q))


@dataclass(frozen=True)
class FrameObjects:
    """3D boxes seen at one frame, in the clip's local ENU frame.

    boxes: (M, 7) float32 [x m, y m, z m, length m, width m, height m, yaw rad].
    categories / track_ids: M strings each.
    """

    boxes: np.ndarray
    categories: tuple[str, ...]
    track_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 7)
        if len(self.categories) != len(boxes) or len(self.track_ids) != len(boxes):
            raise ValueError(
                f"FrameObjects: {len(boxes)} boxes but {len(self.categories)} categories, "
                f"{len(self.track_ids)} track ids"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "categories", tuple(self.categories))
        object.__setattr__(self, "track_ids", tuple(self.track_ids))

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass(frozen=True)
class MapPatch:
    """A raster of the drivable area around the clip.

    mask: (H, W) uint8, nonzero = drivable; row 0 is the NORTH edge (image convention).
    resolution_m: metres per pixel; origin_xy: local-frame coordinates of the south-west corner.
    """

    mask: np.ndarray
    resolution_m: float
    origin_xy: tuple[float, float]

    def __post_init__(self) -> None:
        mask = np.asarray(self.mask)
        if mask.ndim != 2 or mask.dtype != np.uint8:
            raise ValueError(f"MapPatch.mask must be (H, W) uint8, got {mask.shape} {mask.dtype}")
        if self.resolution_m <= 0:
            raise ValueError("MapPatch.resolution_m must be > 0")


@dataclass(frozen=True)
class FutureTrajectory:
    """Future ego poses in the ego frame at t0.

    poses: (K, 3) float32 [x forward m, y left m, yaw rad]; times_s: (K,) seconds after t0;
    valid: (K,) bool, False where the pose stream ends before that time (pose then holds the last one).
    """

    poses: np.ndarray
    times_s: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class Clip:
    """One clip of front-camera frames with ego motion and commands.

    frames: (T, H, W, 3) uint8 RGB. frame_timestamps_us: (T,) int64, strictly increasing.
    intrinsics / extrinsics: the camera's K for the stored frames and its mount on the ego (None where
    the source does not know them, e.g. OpenDV).
    poses: the densest ego pose stream (None for unlabeled video such as OpenDV).
    commands: (T,) int8 Command ids per frame; derived from `poses` when not given.
    fps: nominal frame rate after resampling.
    """

    clip_id: str
    source: str
    frames: np.ndarray
    frame_timestamps_us: np.ndarray
    fps: float
    intrinsics: CameraIntrinsics | None = None
    extrinsics: CameraExtrinsics | None = None
    poses: PoseStream | None = None
    commands: np.ndarray | None = None
    objects: tuple[FrameObjects, ...] | None = None
    map_patch: MapPatch | None = None
    origin_global: tuple[float, float, float, float] | None = None
    license: str = "unknown"
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        frames = self.frames
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            got = getattr(frames, "shape", None), getattr(frames, "dtype", None)
            raise ValueError(f"clip {self.clip_id}: frames must be (T, H, W, 3) uint8, got {got}")
        t = len(frames)
        if t == 0:
            raise ValueError(f"clip {self.clip_id}: no frames")
        ts = np.asarray(self.frame_timestamps_us, dtype=np.int64)
        if ts.shape != (t,) or np.any(np.diff(ts) <= 0):
            raise ValueError(f"clip {self.clip_id}: frame_timestamps_us must be ({t},) strictly increasing")
        object.__setattr__(self, "frame_timestamps_us", ts)
        if not self.fps > 0:
            raise ValueError(f"clip {self.clip_id}: fps must be > 0")
        if self.intrinsics is not None and (self.intrinsics.width, self.intrinsics.height) != (
            frames.shape[2],
            frames.shape[1],
        ):
            raise ValueError(f"clip {self.clip_id}: intrinsics size does not match frames {frames.shape}")
        if self.commands is None and self.poses is not None:
            object.__setattr__(self, "commands", derive_commands(self.poses, ts))
        if self.commands is not None:
            cmd = np.asarray(self.commands, dtype=np.int8)
            if cmd.shape != (t,) or not np.isin(cmd, [c.value for c in Command]).all():
                raise ValueError(f"clip {self.clip_id}: commands must be ({t},) with ids in {{0, 1, 2}}")
            object.__setattr__(self, "commands", cmd)
        if self.objects is not None and len(self.objects) != t:
            raise ValueError(f"clip {self.clip_id}: {len(self.objects)} object lists for {t} frames")

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def has_poses(self) -> bool:
        return self.poses is not None

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return self.frames.shape[1], self.frames.shape[2]

    def _require_poses(self) -> PoseStream:
        if self.poses is None:
            raise ValueError(f"clip {self.clip_id} ({self.source}) is unlabeled: it has no ego poses")
        return self.poses

    def frame_poses(self) -> np.ndarray:
        """(T, 4) [x, y, z, yaw] at frame times, local ENU."""
        return self._require_poses().pose_at(self.frame_timestamps_us)

    def frame_speed_mps(self) -> np.ndarray:
        return self._require_poses().speed_at(self.frame_timestamps_us)

    def frame_accel_mps2(self) -> np.ndarray:
        return self._require_poses().accel_lon_at(self.frame_timestamps_us)

    def frame_yaw_rate_rps(self) -> np.ndarray:
        return self._require_poses().yaw_rate_at(self.frame_timestamps_us)

    def trajectory(self, t0: int, horizon_s: float, dt_s: float, *, t0_is_frame_index: bool = True) -> FutureTrajectory:
        """Future poses from `t0` over `horizon_s` every `dt_s`, in the ego frame at t0.

        t0 is a frame index by default, or a timestamp in microseconds with `t0_is_frame_index=False`.
        Poses come from interpolating the dense pose stream, not only frame poses.
        """
        return future_trajectory(self._require_poses(), self._t0_us(t0, t0_is_frame_index), horizon_s, dt_s)

    def _t0_us(self, t0: int, is_index: bool) -> int:
        return int(self.frame_timestamps_us[t0]) if is_index else int(t0)


def future_trajectory(poses: PoseStream, t0_us: int, horizon_s: float, dt_s: float) -> FutureTrajectory:
    """K = round(horizon_s / dt_s) future poses after `t0_us` in the ego frame at t0."""
    if horizon_s <= 0 or dt_s <= 0:
        raise ValueError(f"horizon_s and dt_s must be > 0, got {horizon_s}, {dt_s}")
    k = int(round(horizon_s / dt_s))
    times_s = dt_s * np.arange(1, k + 1)
    t_us = t0_us + np.round(times_s * 1e6).astype(np.int64)
    local = poses.in_ego_frame(t0_us, t_us).astype(np.float32)
    valid = t_us <= poses.end_us
    return FutureTrajectory(local, times_s.astype(np.float32), valid)


def derive_commands(poses: PoseStream, frame_timestamps_us: np.ndarray) -> np.ndarray:
    """(T,) int8 command per frame from the future driven path (see data.command)."""
    frame_pose = poses.pose_at(frame_timestamps_us)
    speed = poses.speed_at(frame_timestamps_us)
    out = np.empty(len(frame_timestamps_us), dtype=np.int8)
    for i, t in enumerate(frame_timestamps_us):
        route = poses.future_path_xy(int(t))
        out[i] = command_from_route(frame_pose[i, :2], frame_pose[i, 3], speed[i], route)
    return out
