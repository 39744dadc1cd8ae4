"""Ego <-> world frame transforms of points and poses.

The *ego frame* is the rear-axle pose of the ego at observation time, x forward, y left, yaw
counter-clockwise [m, m, rad]. The *world frame* is the simulator's (or log's) fixed frame.
"""

from __future__ import annotations

import math

import numpy as np


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


def _pose(pose_xyyaw: np.ndarray) -> tuple[float, float, float]:
    pose = np.asarray(pose_xyyaw, dtype=np.float64)
    if pose.shape != (3,) or not np.isfinite(pose).all():
        raise ValueError(f"ego_pose_xyyaw must be a finite (3,) [x, y, yaw], got {pose}")
    return float(pose[0]), float(pose[1]), float(pose[2])
