"""Pinhole camera: nuScenes-derived intrinsics, analytic projections, near-plane clipping."""

import numpy as np
import pytest

from sim_eval.render.camera_model import (
    NUSCENES_CAM_FRONT_CX,
    NUSCENES_CAM_FRONT_CY,
    NUSCENES_CAM_FRONT_FX,
    PinholeCamera,
    clip_polygon_near,
)


def test_nuscenes_intrinsics_scale_with_the_image():
    native = PinholeCamera.nuscenes_cam_front(height=900, width=1600)
    assert (native.fx, native.cx, native.cy) == pytest.approx(
        (NUSCENES_CAM_FRONT_FX, NUSCENES_CAM_FRONT_CX, NUSCENES_CAM_FRONT_CY))
    cam = PinholeCamera.nuscenes_cam_front()  # 288 x 512, exactly 0.32 of 900 x 1600
    assert (cam.height, cam.width) == (288, 512)
    assert cam.fx == pytest.approx(1266.417 * 0.32, abs=1e-3) and cam.fy == pytest.approx(cam.fx)
    assert cam.cx == pytest.approx((816.267 + 0.5) * 0.32 - 0.5, abs=1e-3)
    assert cam.cy == pytest.approx((491.507 + 0.5) * 0.32 - 0.5, abs=1e-3)
    assert cam.mount_height_m == pytest.approx(1.51) and cam.mount_forward_m == pytest.approx(1.70)

    stretched = PinholeCamera.nuscenes_cam_front(height=64, width=128)
    assert stretched.fx == pytest.approx(NUSCENES_CAM_FRONT_FX * 128 / 1600)
    assert stretched.fy == pytest.approx(NUSCENES_CAM_FRONT_FX * 64 / 900)
    cropped = PinholeCamera.nuscenes_cam_front(height=64, width=128, resize="crop")
    assert cropped.fx == pytest.approx(cropped.fy)
    # Centre crop of a 72 x 128 resize: 4 rows off the top.
    assert cropped.cy == pytest.approx((NUSCENES_CAM_FRONT_CY + 0.5) * 0.08 - 0.5 - 4.0)


@pytest.mark.parametrize("kwargs, field", [
    (dict(fx=0.0), "fx"), (dict(width=1), "size"), (dict(mount_height_m=-1.0), "mount_height_m"),
    (dict(pitch_rad=2.0), "pitch_rad"), (dict(cx=float("nan")), "non-finite"),
])
def test_invalid_camera_is_rejected(kwargs, field):
    base = dict(fx=400.0, fy=400.0, cx=256.0, cy=144.0, width=512, height=288)
    with pytest.raises(ValueError, match=field):
        PinholeCamera(**{**base, **kwargs})


def test_projection_of_points_ahead_on_the_ground_and_behind():
    cam = PinholeCamera(fx=400.0, fy=420.0, cx=250.0, cy=140.0, width=512, height=288,
                        mount_height_m=1.5, mount_forward_m=1.5)
    yaw = 0.7
    pose = (10.0, -4.0, yaw)
    fwd, left = np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])
    lens = np.array([10.0, -4.0]) + 1.5 * fwd
    pts = np.array([
        [*(lens + 20.0 * fwd), 1.5],               # on the optical axis
        [*(lens + 10.0 * fwd + 2.0 * left), 0.0],  # on the ground, 2 m to the left
        [*(lens - 5.0 * fwd), 1.5],                # behind the lens
    ])
    proj = cam.world_to_pixels(pts, pose)
    np.testing.assert_allclose(proj.uv_px[0], [250.0, 140.0], atol=1e-9)
    np.testing.assert_allclose(proj.uv_px[1], [250.0 - 400.0 * 2.0 / 10.0, 140.0 + 420.0 * 1.5 / 10.0], atol=1e-9)
    np.testing.assert_allclose(proj.depth_m, [20.0, 10.0, -5.0], atol=1e-9)
    assert proj.in_front.tolist() == [True, True, False]
    # The matrix form agrees with K [R | t].
    rt = cam.world_to_camera_matrix(pose)
    hom = (cam.intrinsic_matrix @ (rt[:, :3] @ pts[:2].T + rt[:, 3:])).T
    np.testing.assert_allclose(hom[:, :2] / hom[:, 2:], proj.uv_px[:2], atol=1e-9)


def test_pitch_down_raises_the_horizon():
    level = PinholeCamera.nuscenes_cam_front()
    assert level.horizon_row == pytest.approx(level.cy)
    pitched = level.with_pitch(0.05)
    assert pitched.horizon_row == pytest.approx(level.cy - level.fy * np.tan(0.05))
    far_ground = np.array([[1e6, 0.0, 0.0]])
    row = pitched.world_to_pixels(far_ground, (0.0, 0.0, 0.0)).uv_px[0, 1]
    assert row == pytest.approx(pitched.horizon_row, abs=1e-3)


def test_clip_polygon_near_keeps_the_part_in_front():
    # A 4 m x 4 m square in the plane y = 1, spanning depth -1 .. 3; clipped at depth 1.
    square = np.array([[-2.0, 1.0, -1.0], [2.0, 1.0, -1.0], [2.0, 1.0, 3.0], [-2.0, 1.0, 3.0]])
    clipped = clip_polygon_near(square, near_m=1.0)
    assert len(clipped) == 4 and (clipped[:, 2] >= 1.0 - 1e-12).all()
    xz = clipped[:, [0, 2]]
    area = 0.5 * abs(np.dot(xz[:, 0], np.roll(xz[:, 1], -1)) - np.dot(xz[:, 1], np.roll(xz[:, 0], -1)))
    assert area == pytest.approx(4.0 * 2.0)
    assert clip_polygon_near(square, near_m=5.0).shape == (0, 3)
    assert clip_polygon_near(square, near_m=-2.0) is square
    # A triangle with one vertex in front becomes a smaller triangle.
    tri = np.array([[0.0, 0.0, 2.0], [1.0, 0.0, -2.0], [-1.0, 0.0, -2.0]])
    assert len(clip_polygon_near(tri, near_m=1.0)) == 3
