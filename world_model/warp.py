"""The ground-plane warp baseline: the last frame moved by the known ego motion, as if the world were flat.

A world model that cannot beat this has learned little beyond the ego's own motion. For a camera at
height h above a flat road, a pixel of the road seen in the next frame maps to a pixel of the current
frame through one homography, built from the intrinsics K, the camera's mount (data.schema.CameraExtrinsics)
and the ego motion between the two frames; the textbook form is K (R - t n^T / d) K^-1 for the plane
n.X = d in camera coordinates, composed here from the plane's own 2D coordinates instead:

    G = K R_ce^T [e_x | e_y | -c]       ground point (X, Y, 1) in the ego frame -> pixel (homogeneous)
    S = [[cos a, -sin a, dx], [sin a, cos a, dy], [0, 0, 1]]   next ego frame -> current ego frame, on the ground
    H = G S G^-1                        pixel of the next frame -> pixel of the current frame

(R_ce, c: camera-to-ego rotation and lens position; (dx m forward, dy m left, a rad) the pose of the
next ego frame in the current one; motion in z, pitch and roll is ignored). The frame is resampled
with cv2.warpPerspective (bilinear). Where the warp says nothing, the prediction is the current frame's
own pixel (copy-last), so the baseline is defined everywhere and never less defined than copy-last:
pixels at or above the horizon (their ray never meets the ground ahead), ground points behind the
current camera, and those whose source pixel falls outside the current image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from data.ego_motion import to_ego_frame
from data.schema import CameraExtrinsics, CameraIntrinsics

MIN_SOURCE_DEPTH_M = 0.1  # a ground point closer to the current camera than this along its axis is not warped


@dataclass(frozen=True)
class GroundWarp:
    """frames: (N, H, W, C) the warped frames (dtype of the input); on_ground: (N, H, W) bool, True where
    the pixel came from the ground-plane warp, False where it is the input frame's own pixel."""

    frames: np.ndarray
    on_ground: np.ndarray


def ground_to_pixel(intrinsics: CameraIntrinsics, extrinsics: CameraExtrinsics) -> np.ndarray:
    """(3, 3) G: homogeneous ground point (X m forward, Y m left, 1) in the ego frame -> homogeneous pixel."""
    if extrinsics.height_m <= 0:
        raise ValueError(f"ground-plane warp needs the camera above the ground, got height {extrinsics.height_m} m")
    r_ec = extrinsics.rotation_matrix().T  # ego -> camera
    lens = np.asarray(extrinsics.translation_m)
    plane = np.array([[1.0, 0.0, -lens[0]], [0.0, 1.0, -lens[1]], [0.0, 0.0, -lens[2]]])  # (X, Y, 1) -> ego point - lens
    return intrinsics.matrix() @ r_ec @ plane


def motion_matrix(motion_xyyaw: np.ndarray) -> np.ndarray:
    """(3, 3) S: homogeneous ground point in the next ego frame -> the same point in the current ego frame,
    for the next ego pose (dx m forward, dy m left, dyaw rad) in the current ego frame."""
    dx, dy, dyaw = (float(v) for v in motion_xyyaw)
    c, s = np.cos(dyaw), np.sin(dyaw)
    return np.array([[c, -s, dx], [s, c, dy], [0.0, 0.0, 1.0]])


def ground_homography(intrinsics: CameraIntrinsics, extrinsics: CameraExtrinsics, motion_xyyaw: np.ndarray) -> np.ndarray:
    """(3, 3) H: homogeneous pixel of the next frame -> pixel of the current frame, exact for ground pixels."""
    g = ground_to_pixel(intrinsics, extrinsics)
    return g @ motion_matrix(motion_xyyaw) @ np.linalg.inv(g)


def _next_frame_ground(intrinsics: CameraIntrinsics, extrinsics: CameraExtrinsics) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel of the next frame (row-major): (HW, 3) its ground point in the next ego frame
    (z = 0; the lens where the ray does not point down) and (HW,) bool, True where the ray points down.
    Independent of the motion: computed once for all the motions of a call."""
    h, w = intrinsics.height, intrinsics.width
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    pix = np.stack([cols, rows, np.ones_like(cols)], axis=-1).reshape(-1, 3)  # (HW, 3)
    k_inv = np.linalg.inv(intrinsics.matrix())
    r_ce = extrinsics.rotation_matrix()
    lens = np.asarray(extrinsics.translation_m)
    rays = pix @ k_inv.T @ r_ce.T  # (HW, 3) ego-frame ray directions of the next frame's pixels
    down = rays[:, 2] < -1e-9
    scale = np.where(down, -lens[2] / np.where(down, rays[:, 2], -1.0), 0.0)
    return lens + scale[:, None] * rays, down


def _source_pixels(intrinsics: CameraIntrinsics, extrinsics: CameraExtrinsics, ground_next: np.ndarray, down: np.ndarray,
                   motion_xyyaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`ground_source_pixels` from the motion-independent part (`_next_frame_ground`)."""
    h, w = intrinsics.height, intrinsics.width
    r_ce = extrinsics.rotation_matrix()
    lens = np.asarray(extrinsics.translation_m)
    s = motion_matrix(motion_xyyaw)
    ground_now = ground_next[:, :2] @ s[:2, :2].T + s[:2, 2]  # (HW, 2) in the current ego frame
    cam_now = (np.c_[ground_now, np.zeros(len(ground_now))] - lens) @ r_ce  # (HW, 3) current camera frame
    depth = cam_now[:, 2]
    in_front = down & (depth > MIN_SOURCE_DEPTH_M)
    uvw = cam_now @ intrinsics.matrix().T
    src = uvw[:, :2] / np.where(in_front, depth, 1.0)[:, None]
    inside = (src[:, 0] >= 0) & (src[:, 0] <= w - 1) & (src[:, 1] >= 0) & (src[:, 1] <= h - 1)
    return src.reshape(h, w, 2), (in_front & inside).reshape(h, w)


def ground_source_pixels(
    intrinsics: CameraIntrinsics, extrinsics: CameraExtrinsics, motion_xyyaw: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel of the next frame: (H, W, 2) float64 (column, row) of its ground point in the current
    frame, and (H, W) bool, True where that is defined (the ray hits the ground ahead, the point lies in
    front of the current camera and projects inside the current image)."""
    return _source_pixels(intrinsics, extrinsics, *_next_frame_ground(intrinsics, extrinsics), motion_xyyaw)


def warp_frames(
    frames: np.ndarray, intrinsics: CameraIntrinsics, extrinsics: CameraExtrinsics, motions_xyyaw: np.ndarray
) -> GroundWarp:
    """Warp frames (N, H, W, C) (uint8 or float32) each by its ego motion (N, 3) [dx m forward, dy m left,
    dyaw rad] (the pose of the predicted frame's ego in the ego frame of the frame given) -> GroundWarp.

    Off-ground pixels (see the module docstring) keep the input frame's pixel."""
    frames = np.asarray(frames)
    motions = np.asarray(motions_xyyaw, dtype=np.float64).reshape(-1, 3)
    n, h, w = frames.shape[:3]
    if (w, h) != (intrinsics.width, intrinsics.height):
        raise ValueError(f"frames are {w}x{h} but the intrinsics are for {intrinsics.width}x{intrinsics.height}")
    if len(motions) != n:
        raise ValueError(f"{n} frames but {len(motions)} ego motions")
    out = frames.copy()
    masks = np.zeros((n, h, w), dtype=bool)
    ground_next, down = _next_frame_ground(intrinsics, extrinsics)
    for i in range(n):
        hom = ground_homography(intrinsics, extrinsics, motions[i])
        # H maps destination (next) pixels to source (current) pixels: the inverse map cv2 samples with.
        warped = cv2.warpPerspective(
            frames[i], hom, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        ).reshape(frames[i].shape)
        _, masks[i] = _source_pixels(intrinsics, extrinsics, ground_next, down, motions[i])
        out[i][masks[i]] = warped[masks[i]]
    return GroundWarp(out, masks)


@dataclass(frozen=True)
class WindowWarps:
    """frames: (B, horizon, H, W, C) the last context frame warped to each predicted frame's time;
    defined: (B,) bool, False for windows without a camera or poses (their frames are copy-last)."""

    frames: np.ndarray
    defined: np.ndarray


def warp_windows(
    last_frames: np.ndarray,
    cameras: list[tuple[CameraIntrinsics, CameraExtrinsics] | None],
    poses_xyyaw: np.ndarray,
    last_index: int,
    horizon: int,
) -> WindowWarps:
    """The warp baseline for a batch of windows.

    last_frames: (B, H, W, C) the last context frame of each window; cameras: per window, its clip's
    (intrinsics, extrinsics), or None where unknown; poses_xyyaw: (B, T, 3) window poses [x m, y m, yaw
    rad] in any common frame per window (e.g. ClipWindowDataset's past_poses); last_index: the last context frame's index in the window. Frame last_index + i is
    predicted from the ego motion between the two frame times (i = 1..horizon)."""
    out = np.repeat(np.asarray(last_frames)[:, None], horizon, axis=1)  # copy-last where undefined
    defined = np.array([cam is not None for cam in cameras], dtype=bool)
    for j in np.flatnonzero(defined):
        intrinsics, extrinsics = cameras[j]
        origin = poses_xyyaw[j, last_index]
        targets = poses_xyyaw[j, last_index + 1 : last_index + 1 + horizon]
        motions = to_ego_frame(origin, targets)  # (horizon, 3) in the last context frame's ego frame
        out[j] = warp_frames(np.repeat(last_frames[j][None], horizon, axis=0), intrinsics, extrinsics, motions).frames
    return WindowWarps(out, defined)
