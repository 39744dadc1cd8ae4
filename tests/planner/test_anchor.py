import dataclasses
import math

import numpy as np
import pytest
import torch

from planner.action_model import trajectory_from_model, trajectory_to_model
from planner.action_model.anchor import kinematic_anchor
from planner.action_model.conditions import conditions_from_batch, conditions_from_observation
from planner.vam import synthetic_observations
from tests.settings import action_config, planner_batch


def test_straight_constant_acceleration_and_braking_to_a_stop():
    t = 0.5 * np.arange(1, 7)
    a = kinematic_anchor(torch.tensor([10.0, 10.0, 2.0]), torch.tensor([0.0, 1.0, -2.0]), torch.zeros(3), 6, 0.5).double()
    np.testing.assert_allclose(a[0, :, 0], 10 * t, atol=1e-9)
    np.testing.assert_allclose(a[1, :, 0], 10 * t + 0.5 * t**2, atol=1e-6)
    # 2 m/s braking at 2 m/s^2 stops after 1 s and 1 m, and stays there (midpoint rule: exact
    # except in the step where it stops).
    np.testing.assert_allclose(a[2, 2:, 0], 1.0, atol=1e-3)
    assert (a[:, :, 1].abs() < 1e-9).all() and (a[:, :, 2].abs() < 1e-9).all()


def test_constant_yaw_rate_drives_on_the_circle():
    v, w = 8.0, 0.4  # radius 20 m, left turn
    a = kinematic_anchor(torch.tensor([v]), torch.tensor([0.0]), torch.tensor([w]), 6, 0.5).double()[0]
    t = 0.5 * np.arange(1, 7)
    np.testing.assert_allclose(a[:, 0], v / w * np.sin(w * t), atol=2e-3)
    np.testing.assert_allclose(a[:, 1], v / w * (1 - np.cos(w * t)), atol=2e-3)
    np.testing.assert_allclose(a[:, 2], w * t, atol=1e-6)


def test_offsets_round_trip_and_the_anchor_itself_is_zero():
    c = action_config(ego_status="token", anchor="kinematic", position_scale_m=5.0, predict_yaw=True)
    anchor = kinematic_anchor(torch.tensor([5.0, 9.0]), torch.tensor([0.5, -1.0]), torch.tensor([0.1, -0.2]), 6, 0.5)
    assert trajectory_to_model(anchor, c, anchor).abs().max() < 1e-6
    traj = anchor + torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(0))
    x = trajectory_to_model(traj, c, anchor)
    torch.testing.assert_close(trajectory_from_model(x, c, anchor), traj, atol=1e-5, rtol=0)
    samples = x[:, None].expand(-1, 4, -1, -1)  # (B, S, K, D): the anchor broadcasts over samples
    torch.testing.assert_close(trajectory_from_model(samples, c, anchor), traj[:, None].expand(-1, 4, -1, -1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="anchor"):
        trajectory_to_model(traj, c)
    with pytest.raises(ValueError, match="needs ego_status"):
        action_config(anchor="kinematic")


def test_conditions_carry_the_same_anchor_in_training_and_in_closed_loop():
    c = action_config(ego_status="token", anchor="kinematic")
    obs = synthetic_observations(1, 32, 64, speed_mps=7.0)[0]
    live = conditions_from_observation(obs, c)
    batch = planner_batch(
        torch.tensor([int(obs.command)]), torch.tensor([obs.speed_mps]), accel_mps2=torch.tensor([obs.accel_mps2]),
        yaw_rate_rps=torch.tensor([obs.yaw_rate_rps]), frame_times_s=torch.tensor(np.asarray(obs.ego_history_timestamps_s) - obs.time_s)[None],
        past_poses=torch.tensor(np.asarray(obs.ego_history_xyyaw))[None],
    )
    logged = conditions_from_batch(batch, c)
    assert live.anchor.shape == (1, 6, 3)
    torch.testing.assert_close(live.anchor, logged.anchor)
    assert math.isclose(float(live.anchor[0, 0, 0]), 3.5, abs_tol=0.2)  # ~7 m/s for 0.5 s
    assert conditions_from_observation(obs, action_config(ego_status="token")).anchor is None
    straight = conditions_from_batch(dataclasses.replace(batch, yaw_rate_rps=torch.tensor([0.3])), action_config(ego_status="token", anchor="straight"))
    assert straight.anchor[..., 1:].abs().max() == 0 and straight.anchor[0, -1, 0] > 0  # ahead, never turning


def test_per_waypoint_scales_shrink_the_near_waypoints_and_round_trip():
    from planner.action_model.normalization import position_scales

    c = action_config(ego_status="token", anchor="kinematic", position_scale_m=6.0, waypoint_scale_power=2.0)
    np.testing.assert_allclose(position_scales(c)[:, 0].numpy(), 6.0 * (np.arange(1, 7) / 6) ** 2, rtol=1e-6)
    assert (position_scales(action_config(position_scale_m=6.0))[:, 0] == 6.0).all()  # power 0: one scale
    anchor = kinematic_anchor(torch.tensor([10.0]), torch.tensor([0.0]), torch.tensor([0.0]), 6, 0.5)
    # Offsets growing like t^2 (a constant lateral acceleration of 1 m/s^2) are equal in model units.
    t = 0.5 * torch.arange(1, 7)
    traj = anchor.clone()
    traj[0, :, 1] += 0.5 * t**2
    x = trajectory_to_model(traj, c, anchor)
    torch.testing.assert_close(x[0, :, 1], torch.full((6,), 0.5 * 3.0**2 / 6.0))
    torch.testing.assert_close(trajectory_from_model(x, c, anchor), traj[..., :2], atol=1e-5, rtol=0)
    # The same model-space error costs 36x less on the first waypoint than on the last.
    err = trajectory_from_model(x + 0.01, c, anchor) - traj[..., :2]
    assert err[0, 0, 0] == pytest.approx(err[0, -1, 0] / 36, rel=1e-4)
    with pytest.raises(ValueError, match="waypoint_scale_power"):
        action_config(waypoint_scale_power=-1.0)
