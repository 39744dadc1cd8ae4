"""The ground-plane warp baseline against a flat textured ground rendered with the simulator's own
camera model (sim_eval.render.camera_model), where the next frame is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from data.schema import CameraIntrinsics
from sim_eval.render.camera_model import PinholeCamera
from world_model.warp import ground_homography, ground_source_pixels, warp_frames

SKY = 200.0


def ground_texture(x_m: np.ndarray, y_m: np.ndarray) -> np.ndarray:
    """(..., 3) float RGB levels of a smooth procedural road texture at world points (metres)."""
    a = np.sin(2 * np.pi * x_m / 5.0) * np.cos(2 * np.pi * y_m / 3.0)
    b = np.sin(2 * np.pi * (0.6 * x_m + 0.8 * y_m) / 7.0)
    c = np.cos(2 * np.pi * y_m / 11.0)
    return np.stack([110 + 50 * a + 20 * c, 100 + 40 * b + 30 * a, 90 + 45 * c - 25 * b], axis=-1)


def render_ground(camera: PinholeCamera, ego_xyyaw: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) float32 frame of a flat textured world (sky above the horizon) seen from the ego pose, and
    (H, W) ground distance [m] from the lens (inf for sky). Rays are cast with the camera model's own
    world -> camera transform, independent of the warp's code."""
    rt = camera.world_to_camera_matrix(ego_xyyaw)
    rows, cols = np.mgrid[0 : camera.height, 0 : camera.width].astype(np.float64)
    pix = np.stack([cols, rows, np.ones_like(cols)], axis=-1)
    rays = pix @ np.linalg.inv(camera.intrinsic_matrix).T @ rt[:, :3]  # world directions (rows of R^T)
    lens = camera.position_world(ego_xyyaw)
    ground = rays[..., 2] < -1e-9
    s = np.where(ground, -lens[2] / np.where(ground, rays[..., 2], -1.0), np.inf)
    x, y = lens[0] + s * rays[..., 0], lens[1] + s * rays[..., 1]
    rgb = np.where(ground[..., None], ground_texture(np.where(ground, x, 0), np.where(ground, y, 0)), SKY)
    return rgb.astype(np.float32), np.where(ground, s * np.linalg.norm(rays, axis=-1), np.inf)


def _ground_points(camera: PinholeCamera, ego_xyyaw, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, 3) world points on the ground seen at pixels (rows, cols), by the camera model's transform."""
    rt = camera.world_to_camera_matrix(ego_xyyaw)
    rays = np.c_[cols, rows, np.ones(len(rows))] @ np.linalg.inv(camera.intrinsic_matrix).T @ rt[:, :3]
    lens = camera.position_world(ego_xyyaw)
    return lens + (-lens[2] / rays[:, 2])[:, None] * rays


def _camera(pitch_rad: float = 0.0) -> PinholeCamera:
    return PinholeCamera.nuscenes_cam_front(height=128, width=256, pitch_rad=pitch_rad)


@pytest.mark.parametrize("pitch_rad", [0.0, 0.05])
@pytest.mark.parametrize("motion", [(1.4, 0.0, 0.0), (1.2, 0.15, 0.04), (0.3, -0.05, -0.08)])
def test_warp_is_exact_on_a_flat_textured_ground(pitch_rad, motion):
    cam = _camera(pitch_rad)
    pose_now = (3.0, -1.0, 0.3)
    c, s = np.cos(pose_now[2]), np.sin(pose_now[2])
    dx, dy, dyaw = motion
    pose_next = (pose_now[0] + c * dx - s * dy, pose_now[1] + s * dx + c * dy, pose_now[2] + dyaw)
    now, _ = render_ground(cam, pose_now)
    truth, dist = render_ground(cam, pose_next)
    intr = CameraIntrinsics.from_matrix(cam.intrinsic_matrix, cam.width, cam.height)
    warp = warp_frames(now[None], intr, cam.extrinsics(), np.array([motion]))
    pred, on_ground = warp.frames[0], warp.on_ground[0]
    # Geometry: every warped pixel samples exactly where the camera model projects its ground point.
    src, _ = ground_source_pixels(intr, cam.extrinsics(), np.array(motion))
    rows, cols = np.nonzero(on_ground)
    world = _ground_points(cam, pose_next, rows, cols)
    np.testing.assert_allclose(cam.world_to_pixels(world, pose_now).uv_px, src[rows, cols], atol=1e-6)
    # Pixels: ground seen in both frames within 12 m, off the image border. Bilinear resampling of the
    # smooth texture is good to a fraction of an 8-bit level there; farther rows alias (a 5 m wave
    # spans under 4 rows beyond 12 m), which is resampling, not geometry.
    near = on_ground & (dist < 12.0)
    near[:2], near[-2:], near[:, :2], near[:, -2:] = False, False, False, False
    assert near.sum() > 0.15 * near.size
    err = np.abs(pred - truth)[near]
    copy_err = np.abs(now - truth)[near]
    assert err.mean() < 1.0 and np.quantile(err, 0.99) < 4.0, (err.mean(), np.quantile(err, 0.99))
    assert copy_err.mean() > 10 * err.mean()
    # Everything the warp does not define is the current frame's own pixel: the sky and the strip
    # that comes into view.
    assert np.array_equal(pred[~on_ground], now[~on_ground])
    assert not on_ground[: int(np.floor(cam.horizon_row)) + 1].any()


def test_homography_agrees_with_the_ray_cast_map_and_zero_motion_is_identity():
    cam = _camera(0.03)
    intr = CameraIntrinsics.from_matrix(cam.intrinsic_matrix, cam.width, cam.height)
    ext = cam.extrinsics()
    motion = np.array([1.0, 0.2, 0.05])
    src, ok = ground_source_pixels(intr, ext, motion)
    hom = ground_homography(intr, ext, motion)
    rows, cols = np.nonzero(ok)
    mapped = np.c_[cols, rows, np.ones(len(rows))] @ hom.T
    np.testing.assert_allclose(mapped[:, :2] / mapped[:, 2:], src[rows, cols], atol=1e-6)
    np.testing.assert_allclose(ground_homography(intr, ext, np.zeros(3)), np.eye(3), atol=1e-9)
    frame = np.random.default_rng(0).integers(0, 256, (cam.height, cam.width, 3), dtype=np.uint8)
    assert np.array_equal(warp_frames(frame[None], intr, ext, np.zeros((1, 3))).frames[0], frame)
    # Driving forward, the road below the horizon comes from rows nearer the horizon (it expands).
    src_fwd, ok_fwd = ground_source_pixels(intr, ext, np.array([1.5, 0.0, 0.0]))
    bottom = cam.height - 10
    assert ok_fwd[bottom, cam.width // 2] and src_fwd[bottom, cam.width // 2, 1] < bottom


def test_bad_inputs_are_refused():
    cam = _camera()
    intr = CameraIntrinsics.from_matrix(cam.intrinsic_matrix, cam.width, cam.height)
    with pytest.raises(ValueError, match="intrinsics"):
        warp_frames(np.zeros((1, 10, 10, 3), np.uint8), intr, cam.extrinsics(), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="ego motions"):
        warp_frames(np.zeros((2, cam.height, cam.width, 3), np.uint8), intr, cam.extrinsics(), np.zeros((1, 3)))
