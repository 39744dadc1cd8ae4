"""Open-loop evaluation: analytic oracles for the metrics and the collision check, then the CLI on
held-out synthetic episodes and on the real nuScenes scene (converted at the model's frame size)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data.ego_motion import PoseStream
from data.schema import Clip, FrameObjects
from data.store import ClipStore, ClipStoreWriter
from foresight.cli import main
from planner.datamodule import PlannerWindowDataset, PlannerWindowSpec
from planner.inference import aggregate_samples
from planner.open_loop import METRIC_NAMES, CollisionChecker, evaluate_windows, plan_collides
from tests.conftest import shared_data, turning_clip
from tests.planner.conftest import IMAGE_H, IMAGE_W

SPEED = 8.0


def straight_clip(clip_id: str, yaw_rad: float, box_xy: tuple[float, float] | None) -> Clip:
    """20 s along heading yaw_rad at 8 m/s (10 Hz poses, 2 Hz frames); optionally one parked car
    (4.5 x 2 m) at box_xy in the clip's local frame in every frame."""
    t_us = np.arange(0, 20_000_000, 100_000)
    s = SPEED * t_us * 1e-6
    poses = PoseStream(t_us, np.c_[s * np.cos(yaw_rad), s * np.sin(yaw_rad), 0 * s], np.full(len(t_us), yaw_rad))
    frame_us = t_us[::5].copy()  # contiguous: the store writer mis-saves strided arrays (reported)
    objects = None
    if box_xy is not None:
        box = np.array([[box_xy[0], box_xy[1], 0.8, 4.5, 2.0, 1.6, yaw_rad]], np.float32)
        objects = tuple(FrameObjects(box, ("car",), ("7",)) for _ in frame_us)
    return Clip(clip_id, "test", np.zeros((len(frame_us), 8, 8, 3), np.uint8), frame_us, 2.0, poses=poses, objects=objects, license="test")


@pytest.fixture(scope="module")
def analytic_store(tmp_path_factory) -> ClipStore:
    root = tmp_path_factory.mktemp("analytic")
    heading = np.pi / 2  # driving north: boxes must be rotated into the ego frame correctly
    with ClipStoreWriter(root, "test", {}, codec="png") as writer:
        writer.add("straight", [straight_clip("straight", heading, box_xy=None)])
        # Parked on the path 100 m ahead of the start, and 4 m to the left of it.
        writer.add("blocked", [straight_clip("blocked", heading, box_xy=(0.0, 100.0))])
        writer.add("beside", [straight_clip("beside", heading, box_xy=(-4.0, 100.0))])
        writer.add("turn", [turning_clip("turn", num_frames=20, hw=(8, 8))])
    return ClipStore(root)


def test_constant_velocity_is_exact_on_a_straight_road_and_wrong_in_a_turn(analytic_store):
    spec = PlannerWindowSpec(min_valid_waypoints=6)
    straight = evaluate_windows(None, None, PlannerWindowDataset(analytic_store, None, spec, clip_subset=[0]))["constant_velocity"]
    assert straight["n_windows"] == 40 - 6  # the last 3 s of the log have no full future
    for name in METRIC_NAMES:
        assert straight[name] < 0.05, (name, straight[name])
    turn = evaluate_windows(None, None, PlannerWindowDataset(analytic_store, None, spec, clip_subset=[3]))["constant_velocity"]
    assert turn["l2_3s"] > turn["l2_2s"] > turn["l2_1s"] > 0.1 and turn["min_ade"] == pytest.approx(turn["min_ade"])


def test_plans_through_a_logged_box_collide_and_plans_beside_it_do_not(analytic_store):
    spec = PlannerWindowSpec(min_valid_waypoints=6)
    checker = CollisionChecker(analytic_store, 0.5, 6)
    dataset = PlannerWindowDataset(analytic_store, None, spec, clip_subset=[0, 1, 2])
    rates = {}
    for ci, name in ((0, "straight"), (1, "blocked"), (2, "beside")):
        subset = PlannerWindowDataset(analytic_store, None, spec, clip_subset=[ci])
        rates[name] = evaluate_windows(None, None, subset, collisions=checker)
    assert "log" not in rates["straight"] and "collision_rate" not in rates["straight"]["constant_velocity"]  # no boxes logged
    # Driving through the parked car: the windows whose next 3 s reach it (the car is 4.5 m long,
    # the ego 5.2 m) collide; the log itself drives through it here, so it collides as often.
    blocked = rates["blocked"]
    # Windows 18-24 of 34 reach it within 3 s (waypoints every 4 m, the car spans 97.75-102.25 m).
    assert blocked["constant_velocity"]["collision_rate"] == blocked["log"]["collision_rate"] == pytest.approx(7 / 34)
    assert rates["beside"]["constant_velocity"]["collision_rate"] == 0.0 and rates["beside"]["log"]["collision_rate"] == 0.0
    # The box in the ego frame of a window 2 s before reaching it: 16 m ahead, centred.
    item = next(dataset[i] for i in range(len(dataset)) if int(dataset[i].clip_index) == 1 and int(dataset[i].frame_index) == 21)
    boxes = checker.boxes_along(1, 21)
    np.testing.assert_allclose(boxes[0][0, [0, 1, 6]], [100.0 - SPEED * 10.5, 0.0, 0.0], atol=1e-4)
    assert plan_collides(item.trajectory[:, :2].numpy(), boxes)
    assert not plan_collides(np.c_[np.zeros(6), np.full(6, 4.0)], boxes)  # parked 4 m to the left: clear


def test_cli_on_held_out_synthetic_episodes_writes_the_metrics(trained_planner, tiny_pipeline, tmp_path, capsys):
    out = tmp_path / "synthetic"
    assert main(["eval", "open_loop", f"checkpoint={trained_planner / 'vam'}", f"clips={tiny_pipeline.eval_clips}", f"out={out}", "samples=4", "n_steps=3"]) == 0
    assert "constant_velocity" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert "sample 0" in metrics["protocol"] and metrics["samples"] == 4
    ol = metrics["open_loop"]
    assert set(ol) == {"vam", "ego_mlp", "constant_velocity", "log"}
    for planner in ("vam", "ego_mlp", "constant_velocity"):
        assert all(ol[planner][name] >= 0 for name in METRIC_NAMES) and 0 <= ol[planner]["collision_rate"] <= 1
        assert ol[planner]["n_windows"] == metrics["n_windows"] > 20
    assert ol["log"]["collision_rate"] == 0.0  # the expert's own drive touches nothing
    # Deterministic baselines have one sample: their minADE is their ADE, never below the best of k.
    assert ol["constant_velocity"]["min_fde"] == pytest.approx(ol["constant_velocity"]["l2_3s"])
    # max_windows: an evenly spaced subset.
    assert main(["eval", "open_loop", f"checkpoint={trained_planner / 'vam'}", f"clips={tiny_pipeline.eval_clips}", f"out={tmp_path / 'sub'}",
                 "samples=2", "n_steps=2", "max_windows=7"]) == 0
    sub = json.loads((tmp_path / "sub" / "metrics.json").read_text())
    assert sub["n_windows"] == 7 and sub["n_windows_available"] == metrics["n_windows"] and sub["open_loop"]["vam"]["n_windows"] == 7


def test_cli_on_the_real_nuscenes_scene(trained_planner, tmp_path):
    dataroot = shared_data("nuscenes-scene-0916")
    clips = tmp_path / "nuscenes"
    assert main(["data", "nuscenes", f"dataroot={dataroot}", f"out={clips}", f"height={IMAGE_H}", f"width={IMAGE_W}"]) == 0
    out = tmp_path / "eval"
    assert main(["eval", "open_loop", f"checkpoint={trained_planner / 'vam'}", f"clips={clips}", f"out={out}", "samples=2", "n_steps=2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_windows"] == 41 - 6  # 41 keyframes at 2 Hz, the last 3 s without a full future
    cv = metrics["open_loop"]["constant_velocity"]
    # The scene is a slow right turn (<= 6.1 m/s): going straight is off by metres after 3 s, not tens.
    assert 0.5 < cv["l2_3s"] < 10.0 and cv["l2_1s"] < cv["l2_3s"]
    assert metrics["open_loop"]["log"]["collision_rate"] == 0.0


def test_the_executed_plan_of_several_samples_ignores_an_outlier():
    line = torch.stack([torch.arange(1.0, 7.0), torch.zeros(6)], dim=-1)  # (6, 2)
    samples = torch.stack([line + 30.0, line, line + 0.1, line - 0.1])[None]  # (1, 4, 6, 2): sample 0 is an outlier
    torch.testing.assert_close(aggregate_samples(samples, "first")[0], line + 30.0)
    torch.testing.assert_close(aggregate_samples(samples, "medoid")[0], line)  # the central sample of the cluster
    torch.testing.assert_close(aggregate_samples(samples, "mean")[0], line + 7.5)
    with pytest.raises(ValueError, match="aggregate"):
        aggregate_samples(samples, "vote")


def test_the_cautious_plan_is_the_medoid_of_the_slower_half():
    # 5 samples along x at speeds 10, 10.2, 9.9 m/s (cruising) and 4, 4.5 m/s (braking); all straight
    t = torch.arange(1.0, 7.0) * 0.5  # (6,) [s]
    plan = lambda v, y=0.0: torch.stack([v * t, torch.full_like(t, y)], dim=-1)  # noqa: E731
    samples = torch.stack([plan(10.0), plan(10.2), plan(9.9), plan(4.0, 0.1), plan(4.5)])[None]  # (1, 5, 6, 2)
    torch.testing.assert_close(aggregate_samples(samples, "medoid")[0], plan(9.9))  # a cruising sample (the majority)
    # the slower 3 of 5 are 4.0, 4.5 and 9.9 m/s; their medoid is the 4.5 m/s plan
    torch.testing.assert_close(aggregate_samples(samples, "cautious")[0], plan(4.5))
    # one sample, or all alike: the same as the medoid
    torch.testing.assert_close(aggregate_samples(samples[:, :1], "cautious"), samples[:, 0])
    same = torch.stack([plan(10.0)] * 4)[None]
    torch.testing.assert_close(aggregate_samples(same, "cautious"), aggregate_samples(same, "medoid"))
