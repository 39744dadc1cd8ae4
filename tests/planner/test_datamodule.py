"""Planner windows: labels from the clip store, tokens from the token source, padding at clip start,
the same ego status as in closed loop, a seeded clip split and a resumable batch order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from contract import Observation
from data.store import ClipStore, ClipStoreWriter
from planner.action_model import conditions_from_batch, conditions_from_observation
from planner.batch import PlannerBatch
from planner.datamodule import PlannerWindowDataset, PlannerWindowSpec, split_clips
from tests.conftest import turning_clip
from tests.settings import action_config

SPEED = 5.0  # turning_clip drives at 5 m/s: straight 10 m, a right quarter-turn of radius 20 m, straight


class FrameIndexTokens:
    """A token source whose frame t of every clip is a grid filled with t (so windows are readable)."""

    def __init__(self, store: ClipStore, clip_ids: list[str] | None = None) -> None:
        self.root = Path("frame-index-tokens")
        self.store = store
        self.clip_ids = clip_ids or [ref.clip_id for ref in store.refs]

    def __len__(self) -> int:
        return len(self.store)

    def meta(self, index: int) -> dict:
        ref = self.store.refs[index]
        return {"clip_index": index, "clip_id": self.clip_ids[index], "fps": self.store.meta(index)["fps"], "num_frames": ref.num_frames}

    def clip_tokens(self, index: int) -> np.ndarray:
        n = self.store.refs[index].num_frames
        return np.broadcast_to(np.arange(n, dtype=np.uint16)[:, None, None], (n, 2, 2)).copy()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ClipStore:
    root = tmp_path_factory.mktemp("turning_store")
    with ClipStoreWriter(root, "test", {}, codec="png") as writer:
        writer.add("a", [turning_clip("a", num_frames=20, hw=(8, 8))])
        writer.add("b", [turning_clip("b", num_frames=12, hw=(8, 8))])
    return ClipStore(root)


def test_labels_come_from_the_clip_and_start_windows_repeat_the_oldest_frame(store):
    spec = PlannerWindowSpec(n_observed_frames=3)
    dataset = PlannerWindowDataset(store, FrameIndexTokens(store), spec, clip_subset=[0])
    clip = store.load_clip(0)
    assert len(dataset) == 20  # every frame has its full 3 s future (the poses run 16 s)
    first, fifth = dataset[0], dataset[5]
    assert fifth.tokens[:, 0, 0].tolist() == [3, 4, 5] and int(fifth.n_padded) == 0
    assert first.tokens[:, 0, 0].tolist() == [0, 0, 0] and int(first.n_padded) == 2
    assert dataset[1].tokens[:, 0, 0].tolist() == [0, 0, 1]
    for j in (0, 5, 12):
        item = dataset[j]
        future = clip.trajectory(j, horizon_s=3.0, dt_s=0.5)
        np.testing.assert_allclose(item.trajectory.numpy(), future.poses, atol=1e-5)
        assert item.trajectory_valid.all() and int(item.command) == int(clip.commands[j])
        assert int(item.clip_index) == 0 and int(item.frame_index) == j
        assert abs(float(item.speed_mps) - SPEED) < 0.05
    assert int(dataset[12].command) == 0  # RIGHT: the turn is ahead
    # Past poses at -1.5, -1.0, -0.5, 0 s; before the clip starts (t = 0) the ego is extrapolated
    # backwards at the current speed: at t = 0.5 s the pose 1.5 s ago is 7.5 m behind.
    np.testing.assert_allclose(dataset[1].past_poses.numpy(), [[-7.5, 0, 0], [-5.0, 0, 0], [-2.5, 0, 0], [0, 0, 0]], atol=1e-3)
    np.testing.assert_allclose(dataset[1].frame_times_s.numpy(), [-1.5, -1.0, -0.5, 0.0])
    with pytest.raises(ValueError, match="divide|multiple"):
        PlannerWindowDataset(store, FrameIndexTokens(store), PlannerWindowSpec(frame_period_s=0.3))


def test_ego_status_matches_what_the_closed_loop_planner_computes(store):
    """The features a training window gives equal those of an Observation carrying the history the
    simulator would hand over at that moment (poses every 0.5 s since the episode start)."""
    config = action_config(ego_status="token")
    dataset = PlannerWindowDataset(store, FrameIndexTokens(store), PlannerWindowSpec(), clip_subset=[0])
    poses = store.pose_stream(0)
    frame_us = store.frame_timestamps_us(0)
    for j in (1, 2, 6, 9):
        item = dataset[j]
        batch = PlannerBatch.collate([item])
        t0 = int(frame_us[j])
        history_us = frame_us[max(0, j - 4) : j + 1]  # the runner keeps 2 s of poses at 2 Hz
        observation = Observation(
            frames_rgb=np.zeros((1, 8, 8, 3), np.uint8), frame_timestamps_s=np.array([t0 * 1e-6]),
            ego_history_xyyaw=poses.in_ego_frame(t0, history_us), ego_history_timestamps_s=history_us * 1e-6,
            speed_mps=float(item.speed_mps), accel_mps2=float(item.accel_mps2), yaw_rate_rps=float(item.yaw_rate_rps),
            command=int(item.command), camera_intrinsics=np.eye(3), time_s=t0 * 1e-6,
        )  # fmt: skip
        trained = conditions_from_batch(batch, config).ego_status
        closed_loop = conditions_from_observation(observation, config).ego_status
        torch.testing.assert_close(trained, closed_loop, atol=1e-4, rtol=0)


def test_future_tokens_for_teacher_forcing_and_labels_only_windows(store):
    spec = PlannerWindowSpec(n_observed_frames=2, n_future_frames=2)
    dataset = PlannerWindowDataset(store, FrameIndexTokens(store), spec, clip_subset=[1])
    assert len(dataset) == 10  # a 12-frame clip: the last 2 frames have no 2 future frames
    item = dataset[4]
    assert item.tokens[:, 0, 0].tolist() == [3, 4] and item.future_tokens[:, 0, 0].tolist() == [5, 6]
    blind = PlannerWindowDataset(store, None, PlannerWindowSpec(min_valid_waypoints=6))
    assert blind[0].tokens is None and len(blind) == 20 + 12
    with pytest.raises(ValueError, match="not clip 1"):
        PlannerWindowDataset(store, FrameIndexTokens(store, clip_ids=["a", "other"]), PlannerWindowSpec())


def test_clip_split_is_seeded_and_disjoint():
    train, val = split_clips(20, 0.1, seed=3)
    assert len(val) == 2 and sorted(train + val) == list(range(20))
    assert split_clips(20, 0.1, seed=3) == (train, val) and split_clips(20, 0.1, seed=4) != (train, val)
    assert split_clips(1, 0.5, seed=0) == ([0], []) and split_clips(5, 0.0, seed=0) == ([0, 1, 2, 3, 4], [])


def test_window_commands_follow_the_clip(store):
    dataset = PlannerWindowDataset(store, FrameIndexTokens(store), PlannerWindowSpec(n_observed_frames=2))
    commands = dataset.commands
    assert commands.shape == (len(dataset),) and set(commands.tolist()) <= {0, 1, 2}
    assert commands.tolist() == [int(dataset[i].command) for i in range(len(dataset))]
    assert 0 in commands.tolist()  # turning_clip makes a right turn


def test_windows_whose_future_overlaps_a_perturbation_are_left_out(tmp_path):
    """A labelled future that overlaps the recording expert's injected offset is not the expert's
    choice: such windows are dropped; the ones after it (the clean recovery) are kept."""
    import dataclasses

    clip = turning_clip("p", num_frames=20, hw=(8, 8))
    t = clip.frame_timestamps_us
    start, end = int(t[10]), int(t[10]) + 1_000_000  # perturbed for 1 s from frame 10
    with ClipStoreWriter(tmp_path / "s", "test", {}, codec="png") as writer:
        writer.add("p", [dataclasses.replace(clip, provenance={"perturbed_intervals_us": [[start, end]]})])
    store = ClipStore(tmp_path / "s")
    spec = PlannerWindowSpec(n_observed_frames=2)
    kept = PlannerWindowDataset(store, FrameIndexTokens(store), spec)
    everything = PlannerWindowDataset(store, FrameIndexTokens(store), dataclasses.replace(spec, skip_perturbed=False))
    horizon_us = spec.num_waypoints * spec.waypoint_dt_s * 1e6
    frames_all = [int(everything[i].frame_index) for i in range(len(everything))]
    expected = [j for j in frames_all if not (start < t[j] + horizon_us and end > t[j])]
    assert [int(kept[i].frame_index) for i in range(len(kept))] == expected
    assert kept.skipped_perturbed == len(frames_all) - len(expected) > 0 and everything.skipped_perturbed == 0
    assert max(expected) > 10  # windows after the perturbation (the recovery) stay
