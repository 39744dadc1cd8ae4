import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data.dataset import ClipWindowDataset, WindowSpec
from data.schema import Clip
from data.store import ClipStore, ClipStoreWriter
from tests.conftest import turning_clip


@pytest.fixture()
def store(tmp_path):
    unlabeled = Clip("video", "opendv", np.full((6, 16, 32, 3), 7, np.uint8), np.arange(6) * 500_000, 2.0)
    with ClipStoreWriter(tmp_path, "test", {}, codec="png") as w:
        w.add("a", [turning_clip("a", num_frames=20)])
        w.add("b", [unlabeled])
    return ClipStore(tmp_path)


def test_windows_carry_trajectory_command_and_motion(store):
    ds = ClipWindowDataset(store, WindowSpec(n_frames=4, fps=2.0, horizon_s=3.0, dt_s=0.5))
    assert len(ds) == (20 - 3) + (6 - 3)
    item = ds[0]
    assert item["frames"].shape == (4, 16, 32, 3) and item["frames"].dtype == torch.uint8
    # frame pixel value encodes its index (x10): frames 0..3
    assert item["frames"][:, 0, 0, 0].tolist() == [0, 10, 20, 30]
    assert item["trajectory"].shape == (6, 3) and bool(item["trajectory_valid"].all())
    np.testing.assert_allclose(item["speed_mps"].numpy(), 5.0, atol=0.05)
    np.testing.assert_allclose(item["past_poses"][:, 0].numpy(), [-7.5, -5.0, -2.5, 0.0], atol=1e-4)
    clip = store.load_clip(0)
    np.testing.assert_allclose(item["trajectory"].numpy(), clip.trajectory(3, 3.0, 0.5).poses, atol=1e-6)
    assert int(item["command"]) == int(clip.commands[3])
    unl = ds[len(ds) - 1]
    assert not bool(unl["has_poses"]) and not bool(unl["trajectory_valid"].any())


def test_lower_fps_strides_frames_and_bad_fps_is_refused(store):
    ds = ClipWindowDataset(store, WindowSpec(n_frames=3, fps=1.0), require_poses=True)
    assert ds[0]["frames"][:, 0, 0, 0].tolist() == [0, 20, 40]
    np.testing.assert_allclose(ds[0]["frame_times_s"].numpy(), [-2.0, -1.0, 0.0])
    with pytest.raises(ValueError, match="integer divisor"):
        ClipWindowDataset(store, WindowSpec(n_frames=3, fps=1.5))


def test_worker_processes_read_the_same_windows(store):
    ds = ClipWindowDataset(store, WindowSpec(n_frames=4, fps=2.0))
    ds[0]  # open handles in the parent before forking: workers must not reuse them
    single = [b["frames"] for b in DataLoader(ds, batch_size=5, num_workers=0)]
    multi = [b["frames"] for b in DataLoader(ds, batch_size=5, num_workers=2)]
    assert len(single) == len(multi)
    for a, b in zip(single, multi):
        assert torch.equal(a, b)
