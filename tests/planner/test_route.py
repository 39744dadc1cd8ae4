"""The route a planner reads: route points in its ego status, the route anchor, and that training
windows and closed-loop observations hand the model the same route."""

import dataclasses

import numpy as np
import pytest
import torch

from contract import Observation
from data.ego_motion import EGO_STATUS_HALF_WINDOW_S
from data.route_points import route_path, route_points_ahead
from data.store import ClipStore, ClipStoreWriter
from planner.action_model import conditions_from_batch, conditions_from_observation
from planner.action_model.anchor import kinematic_anchor, route_anchor
from planner.action_model.config import ActionModelConfig
from planner.action_model.route import points_along
from planner.batch import PlannerBatch
from planner.datamodule import PlannerWindowDataset, PlannerWindowSpec
from tests.conftest import turning_clip
from tests.settings import action_config

ROUTE_CONFIG = dict(ego_status="token", ego_features="speed_only", anchor="route", route_points_m=(10.0, 20.0, 30.0))


def _arc(radius: float = 20.0) -> np.ndarray:
    phi = np.linspace(0, np.pi / 2, 200)
    return np.c_[radius * np.sin(phi), radius * (1 - np.cos(phi))]  # a left quarter-turn


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ClipStore:
    root = tmp_path_factory.mktemp("route_store")
    with ClipStoreWriter(root, "test", {}, codec="png") as writer:
        writer.add("a", [turning_clip("a", num_frames=20, hw=(8, 8))])
    return ClipStore(root)


def test_points_along_the_resampled_path_are_the_route_points():
    path = torch.from_numpy(route_path(_arc()))[None]
    distances = [0.0, 5.5, 17.25, 31.0, 59.5, 70.0]  # the last past the path's 60 m: extended
    np.testing.assert_allclose(points_along(path, torch.tensor(distances)).numpy()[0], route_points_ahead(_arc(), distances), atol=1e-2)  # 1 m chords of a 20 m circle


def test_route_anchor_holds_the_speed_along_the_route():
    straight = torch.from_numpy(route_path(np.array([[0.0, 0.0], [1.0, 0.0]])))[None].expand(2, -1, -1)
    speed = torch.tensor([8.0, 0.0])
    torch.testing.assert_close(route_anchor(speed, straight, 6, 0.5), kinematic_anchor(speed, torch.zeros(2), torch.zeros(2), 6, 0.5), atol=1e-5, rtol=0)
    radius, v = 20.0, 8.0
    anchor = route_anchor(torch.tensor([v]), torch.from_numpy(route_path(_arc(radius)))[None], 6, 0.5).double()[0]
    phi = v * 0.5 * np.arange(1, 7) / radius  # arc length v t on the circle
    np.testing.assert_allclose(anchor[:, 0], radius * np.sin(phi), atol=0.01)
    np.testing.assert_allclose(anchor[:, 1], radius * (1 - np.cos(phi)), atol=0.01)
    np.testing.assert_allclose(anchor[:, 2], phi, atol=0.02)  # the route's heading there


def test_route_options_are_checked_and_old_checkpoints_read_none():
    config = action_config(**ROUTE_CONFIG)
    assert config.uses_route and config.ego_status_dim == 1 + 2 * 3
    values = config.to_dict()
    del values["route_points_m"]
    old = ActionModelConfig.from_dict({**values, "anchor": "straight", "ego_features": "speed"})
    assert old.route_points_m == () and not old.uses_route
    for bad in ((20.0, 10.0), (0.0,), (70.0,)):
        with pytest.raises(ValueError, match="route_points_m"):
            action_config(**{**ROUTE_CONFIG, "route_points_m": bad})
    with pytest.raises(ValueError, match="ego_status"):
        action_config(route_points_m=(10.0,))  # the reference has no ego status to put them in
    with pytest.raises(ValueError, match="acceleration"):
        action_config(ego_status="token", ego_features="speed_only", anchor="straight")


def test_training_windows_and_closed_loop_give_the_same_route_conditions(store):
    """A window's route (the path driven from now on) and an Observation carrying that path as its
    route ahead give the same ego status and anchor; the windows' ego status is past-only."""
    config = action_config(**ROUTE_CONFIG)
    dataset = PlannerWindowDataset(store, None, PlannerWindowSpec(route_path=True), clip_subset=[0])
    poses, frame_us = store.pose_stream(0), store.frame_timestamps_us(0)
    for j in (2, 8, 12):
        item = dataset[j]
        t0 = int(frame_us[j])
        assert float(item.speed_mps) == pytest.approx(float(poses.speed_at(t0, EGO_STATUS_HALF_WINDOW_S, past_only=True)))
        ahead = poses.in_ego_frame(t0, poses.timestamps_us[poses.timestamps_us >= t0])[:, :2]
        np.testing.assert_allclose(item.route_path.numpy(), route_path(ahead), atol=1e-3)
        observation = Observation(
            frames_rgb=np.zeros((1, 8, 8, 3), np.uint8), frame_timestamps_s=np.array([t0 * 1e-6]),
            ego_history_xyyaw=np.zeros((1, 3)), ego_history_timestamps_s=np.array([t0 * 1e-6]),
            speed_mps=float(item.speed_mps), accel_mps2=0.0, yaw_rate_rps=0.0, command=int(item.command),
            camera_intrinsics=np.eye(3), time_s=t0 * 1e-6, route_ahead_xy=ahead,
        )  # fmt: skip
        trained = conditions_from_batch(PlannerBatch.collate([item]), config)
        closed_loop = conditions_from_observation(observation, config)
        torch.testing.assert_close(trained.ego_status, closed_loop.ego_status, atol=1e-4, rtol=0)
        torch.testing.assert_close(trained.anchor, closed_loop.anchor, atol=1e-3, rtol=0)
    # The route anchor lies on the logged future: on this constant-speed clip it is the label itself.
    item = dataset[8]
    anchor = conditions_from_batch(PlannerBatch.collate([item]), config).anchor[0]
    np.testing.assert_allclose(anchor[:, :2].numpy(), item.trajectory[:, :2].numpy(), atol=0.05)
    with pytest.raises(ValueError, match="route_ahead_xy"):
        conditions_from_observation(dataclasses.replace(observation, route_ahead_xy=None), config)
    assert PlannerWindowDataset(store, None, PlannerWindowSpec(), clip_subset=[0])[8].route_path is None
