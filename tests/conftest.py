"""Shared test fixtures: where the real data lives, and small synthetic clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

# Tests run two at a time on two cores (`pytest -n 2`): one intra-op thread per test process
# keeps them from oversubscribing the machine (and keeps timings steady).
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """Path of a real fixture in ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real fixture {path} is absent (../shared/data is not checked out next to the repo)")
    return path


def turning_clip(clip_id: str = "turn", num_frames: int = 20, radius_m: float = 20.0, speed_mps: float = 5.0, hw=(16, 32)):
    """A clip that drives straight for 10 m, then a right quarter-turn, then straight, with a
    dense 20 Hz pose stream and 2 Hz frames whose pixel value encodes the frame index."""
    from data.ego_motion import PoseStream
    from data.schema import Clip

    # Arc-length parametrised path: straight 10 m, quarter circle to the right, straight 40 m.
    s_turn = np.pi / 2 * radius_m
    total = 10.0 + s_turn + 40.0
    s = np.arange(0.0, total, speed_mps / 20.0)
    x = np.where(s < 10, s, 0.0)
    y = np.zeros_like(s)
    yaw = np.zeros_like(s)
    on_arc = (s >= 10) & (s < 10 + s_turn)
    phi = (s[on_arc] - 10) / radius_m
    x[on_arc] = 10 + radius_m * np.sin(phi)
    y[on_arc] = -radius_m * (1 - np.cos(phi))
    yaw[on_arc] = -phi
    after = s >= 10 + s_turn
    x[after] = 10 + radius_m
    y[after] = -radius_m - (s[after] - 10 - s_turn)
    yaw[after] = -np.pi / 2
    ts = (s / speed_mps * 1e6).astype(np.int64)
    poses = PoseStream(ts, np.c_[x, y, np.zeros_like(x)], yaw)
    frame_ts = np.arange(num_frames, dtype=np.int64) * 500_000
    frames = np.zeros((num_frames, *hw, 3), np.uint8)
    frames[:] = (np.arange(num_frames) * 10 % 256).astype(np.uint8)[:, None, None, None]
    return Clip(clip_id, "test", frames, frame_ts, 2.0, poses=poses, license="test", provenance={"kind": "analytic"})


@pytest.fixture(scope="module")
def road_clips_dir(tmp_path_factory):
    """A PNG clip store of two 6-frame 32x64 road-like clips (data.bench.road_like_clip, seeds 0 and
    1): the smallest input a tokenizer training run takes."""
    from data.bench import road_like_clip
    from data.store import ClipStoreWriter

    out = tmp_path_factory.mktemp("clips")
    with ClipStoreWriter(out, "test", {"t": 1}, codec="png") as w:
        for i in range(2):
            w.add(f"item{i}", [road_like_clip(f"clip{i}", 6, 32, 64, seed=i)])
    return out
