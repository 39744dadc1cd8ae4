"""Pinhole front camera mounted on the ego: intrinsics, mount, and vectorised projection.

Frames:
- world: x, y on the ground plane, z up (metres).
- ego: the rear axle, x forward, y left, z up (the simulator's pose reference).
- camera (OpenCV): x right, y down, z forward (optical axis), origin at the lens.
Pixel coordinates follow OpenCV: (u, v) = (column, row), pixel centres at integers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from data.schema import CameraExtrinsics

# nuScenes CAM_FRONT intrinsics (scene-0916 calibration, 1600x900 sensor).
NUSCENES_CAM_FRONT_FX = 1266.417203046554
NUSCENES_CAM_FRONT_FY = 1266.417203046554
NUSCENES_CAM_FRONT_CX = 816.2670197447984
NUSCENES_CAM_FRONT_CY = 491.50706579294757
NUSCENES_CAM_FRONT_WIDTH = 1600
NUSCENES_CAM_FRONT_HEIGHT = 900
# Its mount relative to the rear axle on the ground (translation 1.70, 0.02, 1.51 m; pitch ~0.3 deg down).
NUSCENES_CAM_FRONT_FORWARD_M = 1.70
NUSCENES_CAM_FRONT_HEIGHT_M = 1.51


@dataclass(frozen=True)
class ProjectedPoints:
    """Result of projecting N points.

    uv_px: (N, 2) float64 pixel coordinates (column, row); undefined where ~in_front.
    depth_m: (N,) distance along the optical axis (camera z).
    in_front: (N,) bool, depth_m >= the near plane used for the projection.
    """

    uv_px: np.ndarray
    depth_m: np.ndarray
    in_front: np.ndarray


@dataclass(frozen=True)
class PinholeCamera:
    """A distortion-free pinhole camera rigidly mounted on the ego, looking forward.

    fx, fy, cx, cy: intrinsics in pixels for an image of `height` x `width` pixels.
    mount_height_m: lens height above the ground; mount_forward_m: lens position ahead of the rear
    axle; mount_lateral_m: to the left of the ego centreline; pitch_rad: positive tilts the optical
    axis down (the horizon moves up in the image).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    mount_height_m: float = 1.5
    mount_forward_m: float = 1.5
    mount_lateral_m: float = 0.0
    pitch_rad: float = 0.0

    def __post_init__(self) -> None:
        vals = (self.fx, self.fy, self.cx, self.cy, self.mount_height_m, self.mount_forward_m,
                self.mount_lateral_m, self.pitch_rad)
        if not np.isfinite(vals).all():
            raise ValueError(f"PinholeCamera has non-finite fields: {vals}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"PinholeCamera.fx/fy must be > 0, got {self.fx}, {self.fy}")
        if int(self.width) != self.width or int(self.height) != self.height:
            raise ValueError(f"PinholeCamera.width/height must be integers, got {self.width}x{self.height}")
        if self.width < 2 or self.height < 2:
            raise ValueError(f"PinholeCamera size must be >= 2x2, got {self.height}x{self.width}")
        if self.mount_height_m <= 0:
            raise ValueError(f"PinholeCamera.mount_height_m must be > 0, got {self.mount_height_m}")
        if abs(self.pitch_rad) >= np.pi / 2 - 1e-3:
            raise ValueError(f"PinholeCamera.pitch_rad must be within (-pi/2, pi/2), got {self.pitch_rad}")

    @classmethod
    def nuscenes_cam_front(
        cls,
        height: int = 288,
        width: int = 512,
        resize: Literal["stretch", "crop"] = "stretch",
        mount_height_m: float = NUSCENES_CAM_FRONT_HEIGHT_M,
        mount_forward_m: float = NUSCENES_CAM_FRONT_FORWARD_M,
        pitch_rad: float = 0.0,
    ) -> PinholeCamera:
        """nuScenes CAM_FRONT intrinsics resized to `height` x `width`.

        resize="stretch" scales each axis independently (what `cv2.resize` of a 1600x900 frame does;
        fx != fy when the aspect ratio differs from 16:9). resize="crop" scales uniformly so the target
        is covered, then centre-crops the excess (square pixels).
        """
        sx = width / NUSCENES_CAM_FRONT_WIDTH
        sy = height / NUSCENES_CAM_FRONT_HEIGHT
        if resize == "stretch":
            off_x = off_y = 0.0
        elif resize == "crop":
            sx = sy = max(sx, sy)
            off_x = (NUSCENES_CAM_FRONT_WIDTH * sx - width) / 2
            off_y = (NUSCENES_CAM_FRONT_HEIGHT * sy - height) / 2
        else:
            raise ValueError(f"PinholeCamera.nuscenes_cam_front: resize must be 'stretch' or 'crop', got {resize!r}")
        # Pixel centres sit at integers, so a scale s maps u -> (u + 0.5) * s - 0.5.
        return cls(
            fx=NUSCENES_CAM_FRONT_FX * sx,
            fy=NUSCENES_CAM_FRONT_FY * sy,
            cx=(NUSCENES_CAM_FRONT_CX + 0.5) * sx - 0.5 - off_x,
            cy=(NUSCENES_CAM_FRONT_CY + 0.5) * sy - 0.5 - off_y,
            width=int(width),
            height=int(height),
            mount_height_m=mount_height_m,
            mount_forward_m=mount_forward_m,
            pitch_rad=pitch_rad,
        )

    def extrinsics(self) -> CameraExtrinsics:
        """The mount as clip/observation extrinsics (camera to ego, ego frame at the rear axle on the ground)."""
        return CameraExtrinsics.from_mount(self.mount_height_m, self.mount_forward_m, self.mount_lateral_m, self.pitch_rad)

    def with_pitch(self, pitch_rad: float) -> PinholeCamera:
        return replace(self, pitch_rad=float(pitch_rad))

    @property
    def intrinsic_matrix(self) -> np.ndarray:
        """(3, 3) K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def horizon_row(self) -> float:
        """Image row (fractional) of the ground plane's vanishing line."""
        return self.cy - self.fy * np.tan(self.pitch_rad)

    def position_world(self, ego_pose_xyyaw: tuple[float, float, float]) -> np.ndarray:
        """(3,) lens position in world metres for the ego rear-axle pose (x m, y m, yaw rad)."""
        x, y, yaw = ego_pose_xyyaw
        c, s = np.cos(yaw), np.sin(yaw)
        return np.array([
            x + c * self.mount_forward_m - s * self.mount_lateral_m,
            y + s * self.mount_forward_m + c * self.mount_lateral_m,
            self.mount_height_m,
        ])

    def world_to_camera_matrix(self, ego_pose_xyyaw: tuple[float, float, float]) -> np.ndarray:
        """(3, 4) [R | t] mapping homogeneous world points to camera coordinates."""
        yaw = ego_pose_xyyaw[2]
        c, s = np.cos(yaw), np.sin(yaw)
        cp, sp = np.cos(self.pitch_rad), np.sin(self.pitch_rad)
        # Rows: camera axes expressed in the world frame. Forward f and left l on the ground, up z.
        f = np.array([c, s, 0.0])
        left = np.array([-s, c, 0.0])
        up = np.array([0.0, 0.0, 1.0])
        rot = np.stack([
            -left,                 # camera x: right
            -sp * f - cp * up,     # camera y: down, tilted back when pitched down
            cp * f - sp * up,      # camera z: optical axis, tilted down by pitch
        ])
        t = -rot @ self.position_world(ego_pose_xyyaw)
        return np.concatenate([rot, t[:, None]], axis=1)

    def world_to_camera(self, points_xyz: np.ndarray, ego_pose_xyyaw: tuple[float, float, float]) -> np.ndarray:
        """(N, 3) world metres -> (N, 3) camera-frame metres."""
        pts = np.asarray(points_xyz, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"points_xyz must have shape (N, 3), got {pts.shape}")
        rt = self.world_to_camera_matrix(ego_pose_xyyaw)
        return pts @ rt[:, :3].T + rt[:, 3]

    def camera_to_pixels(self, points_cam: np.ndarray, near_m: float = 0.1) -> ProjectedPoints:
        """(N, 3) camera-frame points -> pixels; points with depth < near_m are flagged, not dropped."""
        pts = np.asarray(points_cam, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"points_cam must have shape (N, 3), got {pts.shape}")
        if near_m <= 0:
            raise ValueError(f"near_m must be > 0, got {near_m}")
        depth = pts[:, 2]
        in_front = depth >= near_m
        inv_z = 1.0 / np.where(in_front, depth, near_m)
        uv = np.empty((len(pts), 2))
        uv[:, 0] = self.fx * pts[:, 0] * inv_z + self.cx
        uv[:, 1] = self.fy * pts[:, 1] * inv_z + self.cy
        return ProjectedPoints(uv_px=uv, depth_m=depth, in_front=in_front)

    def world_to_pixels(
        self, points_xyz: np.ndarray, ego_pose_xyyaw: tuple[float, float, float], near_m: float = 0.1
    ) -> ProjectedPoints:
        """(N, 3) world metres -> pixels for the camera mounted on the ego at `ego_pose_xyyaw`."""
        return self.camera_to_pixels(self.world_to_camera(points_xyz, ego_pose_xyyaw), near_m)


def clip_polygon_near(points_cam: np.ndarray, near_m: float) -> np.ndarray:
    """Clip a planar polygon (K, 3) in camera coordinates to the half-space depth >= near_m.

    Sutherland-Hodgman against one plane, vectorised over edges. Returns (M, 3), M may be 0.
    """
    z = points_cam[:, 2]
    inside = z >= near_m
    if inside.all():
        return points_cam
    if not inside.any():
        return points_cam[:0]
    k = len(points_cam)
    nxt = np.empty_like(points_cam)
    nxt[:-1] = points_cam[1:]
    nxt[-1] = points_cam[0]
    inside_next = np.empty_like(inside)
    inside_next[:-1] = inside[1:]
    inside_next[-1] = inside[0]
    crosses = np.nonzero(inside != inside_next)[0]
    # Slot 2i holds vertex i (kept if inside), slot 2i+1 the crossing on edge i -> i+1 (if any).
    candidates = np.empty((2 * k, 3))
    candidates[0::2] = points_cam
    z0, z1 = z[crosses], nxt[crosses, 2]
    t = (near_m - z0) / (z1 - z0)
    candidates[2 * crosses + 1] = points_cam[crosses] + t[:, None] * (nxt[crosses] - points_cam[crosses])
    keep = np.zeros(2 * k, dtype=bool)
    keep[0::2] = inside
    keep[2 * crosses + 1] = True
    return candidates[keep]
