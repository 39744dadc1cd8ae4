"""Token windows for GPT training and the seeded source-mixing sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from world_model.tokens_dataset import MixingSampler, TokenWindowDataset


def clip(n_frames: int, offset: int = 0, hw=(2, 3)) -> np.ndarray:
    """Tokens (T, h, w) uint16 whose value encodes frame index + offset."""
    return (np.arange(n_frames, dtype=np.uint16)[:, None, None] + offset) * np.ones(hw, np.uint16)


def test_windows_cover_each_clip_with_stride_and_read_memmaps(tmp_path):
    path = tmp_path / "clip.tokens"
    mm = np.memmap(path, dtype=np.uint16, mode="w+", shape=(7, 2, 3))
    mm[:] = clip(7, offset=100)
    mm.flush()
    clips = [clip(5), np.memmap(path, dtype=np.uint16, mode="r", shape=(7, 2, 3)), clip(2)]
    ds = TokenWindowDataset(clips, n_frames=3, stride=2, source="nuplan", clip_ids=["a", "b", "c"])
    assert ds.index == [(0, 0), (0, 2), (1, 0), (1, 2), (1, 4)]
    assert ds.short_clips == ["c"] and ds.grid_hw == (2, 3)
    item = ds[3]
    assert item["tokens"].dtype == torch.int64 and item["tokens"].shape == (3, 2, 3)
    assert item["tokens"][:, 0, 0].tolist() == [102, 103, 104]
    assert (item["clip_index"].item(), item["start_frame"].item(), item["source"]) == (1, 2, "nuplan")
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["tokens"].shape == (2, 3, 2, 3) and batch["source"] == ["nuplan", "nuplan"]


def test_bad_clips_raise_naming_the_clip():
    with pytest.raises(ValueError, match="clip 'x'.*\\(T, h, w\\)"):
        TokenWindowDataset([np.zeros((4, 2), np.uint16)], n_frames=2, clip_ids=["x"])
    with pytest.raises(ValueError, match="clip '1'.*differs"):
        TokenWindowDataset([clip(4), clip(4, hw=(3, 3))], n_frames=2)
    with pytest.raises(ValueError, match="integers"):
        TokenWindowDataset([np.zeros((4, 2, 2), np.float32)], n_frames=2)
    ds = TokenWindowDataset([clip(4, offset=10)], n_frames=2, source="opendv", clip_ids=["v"], vocab_size=12)
    ds[0]
    with pytest.raises(ValueError, match=r"'opendv'\) clip 'v' frames 2..3"):
        ds[2]


def make_sampler(num_samples: int, seed: int = 0) -> MixingSampler:
    datasets = {
        "opendv": TokenWindowDataset([clip(50), clip(30)], n_frames=4, source="opendv"),
        "nuplan": TokenWindowDataset([clip(60)], n_frames=4, source="nuplan"),
        "nuscenes": TokenWindowDataset([clip(10)], n_frames=4, source="nuscenes"),
    }
    return MixingSampler(datasets, {"opendv": 0.4, "nuplan": 0.59, "nuscenes": 0.01}, num_samples=num_samples, seed=seed)


def test_mixing_proportions_and_index_ranges():
    sampler = make_sampler(5000)
    assert sampler.sizes == [74, 57, 7]
    indices = list(sampler)
    assert len(indices) == len(sampler) == 5000
    realised = sampler.realised_proportions()
    for name, target in {"opendv": 0.4, "nuplan": 0.59, "nuscenes": 0.01}.items():
        assert abs(realised[name] - target) < 0.02, (name, realised[name])
    # Counts agree with where the indices fall in the concatenated dataset.
    bounds = np.cumsum([0] + sampler.sizes)
    per_source = np.histogram(indices, bins=bounds)[0]
    assert per_source.tolist() == [sampler.realised_counts[n] for n in sampler.names]
    # Within a source, windows repeat only after all were drawn.
    nuplan = [i for i in indices if bounds[1] <= i < bounds[2]]
    assert sorted(nuplan[:57]) == list(range(bounds[1], bounds[2]))
    item = sampler.dataset[indices[0]]
    assert item["tokens"].shape == (4, 2, 3)
    sampler.reset_counts()
    assert sampler.realised_proportions() == {"opendv": 0.0, "nuplan": 0.0, "nuscenes": 0.0}


def test_mixing_order_depends_only_on_seed_and_epoch():
    a, b, c = make_sampler(200), make_sampler(200), make_sampler(200, seed=1)
    assert list(a) == list(b) and list(a) != list(c)
    a.set_epoch(1)
    epoch1 = list(a)
    assert epoch1 != list(b) and epoch1 == list(a)
    with pytest.raises(ValueError, match="different sources"):
        MixingSampler({"a": [1]}, {"b": 1.0}, num_samples=1)
    with pytest.raises(ValueError, match="'a' has proportion"):
        MixingSampler({"a": [], "b": [1]}, {"a": 0.5, "b": 0.5}, num_samples=1)
