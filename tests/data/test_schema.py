import numpy as np
import pytest

from data.command import Command, command_from_route
from data.ego_motion import PoseStream, from_ego_frame, to_ego_frame, yaw_from_quaternion_wxyz
from data.schema import CameraIntrinsics, Clip
from tests.conftest import turning_clip


def test_speed_yaw_rate_and_accel_of_a_constant_speed_turn():
    clip = turning_clip(speed_mps=5.0, radius_m=20.0)
    t = clip.poses.timestamps_us
    mid = t[(t > 3_000_000) & (t < 5_000_000)]  # on the arc (arc spans 2 s .. 8.3 s)
    np.testing.assert_allclose(clip.poses.speed_at(mid), 5.0, atol=0.05)
    np.testing.assert_allclose(clip.poses.yaw_rate_at(mid), -5.0 / 20.0, atol=0.01)
    np.testing.assert_allclose(clip.poses.accel_lon_at(mid), 0.0, atol=0.1)


def test_trajectory_interpolates_the_dense_stream_in_the_ego_frame():
    clip = turning_clip(speed_mps=5.0)
    traj = clip.trajectory(0, horizon_s=1.5, dt_s=0.5)  # straight part: 2.5 m per 0.5 s
    np.testing.assert_allclose(traj.poses[:, 0], [2.5, 5.0, 7.5], atol=1e-4)
    np.testing.assert_allclose(traj.poses[:, 1:], 0.0, atol=1e-6)
    assert traj.valid.all()
    # Horizon in seconds, independent of dt: the same 3 s at 0.1 s ends at the same pose as at 0.5 s.
    a = clip.trajectory(4, 3.0, 0.5).poses[-1]
    b = clip.trajectory(4, 3.0, 0.1).poses[-1]
    np.testing.assert_allclose(a, b, atol=1e-5)
    # Beyond the end of the pose stream the pose holds and is flagged invalid.
    late = clip.trajectory(clip.num_frames - 1, 30.0, 0.5, t0_is_frame_index=True)
    assert not late.valid[-1] and late.valid[0]


def test_commands_from_time_based_lookahead():
    # 5 m/s -> look 15 m ahead. Frame k is at arc length 2.5 k m; the 20 m right arc spans 10-41.4 m.
    clip = turning_clip(speed_mps=5.0, radius_m=20.0)
    cmds = clip.commands
    assert cmds[0] == Command.STRAIGHT  # target 5 m into the arc: 0.6 m to the right
    assert cmds[1] == Command.STRAIGHT  # 7.5 m into the arc: 1.4 m right
    assert (cmds[2:11] == Command.RIGHT).all()  # >= 10 m into the arc: > 2 m right
    assert cmds[-1] == Command.STRAIGHT  # after the turn


def test_command_rule_is_in_seconds_and_metres():
    route = np.c_[np.linspace(0, 30, 31), np.zeros(31)]
    assert command_from_route(np.zeros(2), 0.0, 5.0, route) == Command.STRAIGHT
    bend_left = np.c_[np.r_[np.linspace(0, 10, 11), np.full(20, 10.0)], np.r_[np.zeros(11), np.arange(1, 21.0)]]
    # 5 m/s -> 15 m ahead along the route = (10, 5): 5 m to the left.
    assert command_from_route(np.zeros(2), 0.0, 5.0, bend_left) == Command.LEFT
    assert command_from_route(np.zeros(2), 0.0, 5.0, bend_left * [1, -1]) == Command.RIGHT
    # Standing still: the look-ahead is 2 m/s * 3 s = 6 m -> still on the straight part.
    assert command_from_route(np.zeros(2), 0.0, 0.0, bend_left) == Command.STRAIGHT
    # Heading matters: the same route seen by an ego facing +y is "straight ahead" then right.
    assert command_from_route(np.array([10.0, 0.0]), np.pi / 2, 5.0, bend_left[10:]) == Command.STRAIGHT


def test_clip_validation_errors_are_clear():
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        Clip("x", "t", frames.astype(np.float32), np.arange(3), 2.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        Clip("x", "t", frames, np.array([0, 2, 1]), 2.0)
    with pytest.raises(ValueError, match="intrinsics size"):
        Clip("x", "t", frames, np.arange(3), 2.0, intrinsics=CameraIntrinsics(10, 10, 4, 4, 16, 16))
    with pytest.raises(ValueError, match="NaN"):
        PoseStream(np.arange(3), np.array([[0, 0, 0], [1, np.nan, 0], [2, 0, 0]]), np.zeros(3))
    with pytest.raises(ValueError, match="unlabeled"):
        Clip("x", "t", frames, np.arange(3), 2.0).trajectory(0, 3.0, 0.5)


def test_pose_stream_from_unsorted_sorts_dedups_and_unwraps():
    ts = np.array([300, 100, 200, 200])
    yaw = np.array([-3.1, 3.1, -3.13, 0.0])
    p = PoseStream.from_unsorted(ts, np.zeros((4, 3)), yaw)
    assert list(p.timestamps_us) == [100, 200, 300]
    assert np.all(np.abs(np.diff(p.yaw_rad)) < 0.2)


def test_frames_transforms_and_quaternions():
    origin = np.array([3.0, -2.0, 0.7])
    pts = np.random.default_rng(0).normal(size=(10, 3))
    np.testing.assert_allclose(from_ego_frame(origin, to_ego_frame(origin, pts)), pts, atol=1e-12)
    yaw = 1.2
    q = np.array([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
    assert yaw_from_quaternion_wxyz(q) == pytest.approx(yaw)


def test_intrinsics_resize_keeps_the_field_of_view():
    k = CameraIntrinsics(1266.4, 1266.4, 816.3, 491.5, 1600, 900)
    r = k.resized(512, 288)
    assert r.fx == pytest.approx(1266.4 * 0.32)
    # The principal point keeps its relative position (pixel-centre convention).
    assert (r.cx + 0.5) / 512 == pytest.approx((k.cx + 0.5) / 1600)
