"""Windows of cached image tokens for world-model training, and a sampler that mixes sources.

`TokenWindowDataset` cuts each clip of cached tokens (T, h, w) into windows of `n_frames` frames.
`MixingSampler` draws windows from several such datasets with fixed proportions (e.g. fine-tuning
on 40% OpenDV, 59% nuPlan, 1% nuScenes) and counts what it actually drew, for logging.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Sized

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Sampler

from world_model.gpt.ego_motion import frame_motions, unknown_motions


class TokenWindowDataset(Dataset):
    """Windows of `n_frames` consecutive frames, starting every `stride` frames, over token clips.

    clips: integer arrays (T, h, w), typically uint16 np.memmap (read lazily, one window at a time).
    Clips shorter than n_frames give no window (listed in `short_clips`). poses: per clip None or
    (T, 4) float [x m, y m, z m, yaw rad] at each of its frames (as the token store keeps them).
    Each item: tokens (n_frames, h, w) int64; ego_motion (n_frames, 3) float32 the motion into each
    frame from the previous one [dx_forward_m, dy_left_m, dyaw_rad] in the previous frame's ego
    frame (world_model/gpt/ego_motion.py), NaN for the window's first frame and for clips without
    poses; warped_prev (n_frames, h, w) int64 each frame's warped previous-frame tokens
    (world_model/warp_tokens.py; -1 = unknown, everywhere for clips without `warped`); clip_index ()
    int64 (into `clips` / `clip_ids`); start_frame () int64; source: str (this dataset's name).
    warped: per clip None or (T, h, w) integer warped previous-frame tokens, -1 = unknown.
    With `vocab_size`, an item holding a token >= vocab_size raises ValueError naming its clip.
    """

    def __init__(
        self,
        clips: Sequence[np.ndarray],
        n_frames: int,
        stride: int = 1,
        source: str = "",
        clip_ids: Sequence[str] | None = None,
        vocab_size: int | None = None,
        poses: Sequence[np.ndarray | None] | None = None,
        warped: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        if n_frames < 1 or stride < 1:
            raise ValueError(f"TokenWindowDataset({source!r}): n_frames and stride must be >= 1, got {n_frames}, {stride}")
        if clip_ids is not None and len(clip_ids) != len(clips):
            raise ValueError(f"TokenWindowDataset({source!r}): {len(clip_ids)} clip_ids for {len(clips)} clips")
        if poses is not None and len(poses) != len(clips):
            raise ValueError(f"TokenWindowDataset({source!r}): {len(poses)} pose arrays for {len(clips)} clips")
        self.clips = list(clips)
        if warped is not None and len(warped) != len(clips):
            raise ValueError(f"TokenWindowDataset({source!r}): {len(warped)} warped token arrays for {len(clips)} clips")
        self.poses = list(poses) if poses is not None else [None] * len(self.clips)
        self.warped = list(warped) if warped is not None else [None] * len(self.clips)
        self.clip_ids = list(clip_ids) if clip_ids is not None else [str(i) for i in range(len(self.clips))]
        self.n_frames = n_frames
        self.stride = stride
        self.source = source
        self.vocab_size = vocab_size
        self.grid_hw: tuple[int, int] | None = None
        self.short_clips: list[str] = []
        self.index: list[tuple[int, int]] = []  # (clip index, start frame)
        for ci, clip in enumerate(self.clips):
            name = f"TokenWindowDataset({source!r}) clip {self.clip_ids[ci]!r}"
            if clip.ndim != 3:
                raise ValueError(f"{name}: tokens must be (T, h, w), got shape {clip.shape}")
            if not np.issubdtype(clip.dtype, np.integer):
                raise ValueError(f"{name}: tokens must be integers (uint16 cache), got {clip.dtype}")
            if self.grid_hw is None:
                self.grid_hw = (int(clip.shape[1]), int(clip.shape[2]))
            elif tuple(clip.shape[1:]) != self.grid_hw:
                raise ValueError(f"{name}: token grid {tuple(clip.shape[1:])} differs from the first clip's {self.grid_hw}")
            clip_poses = self.poses[ci]
            if clip_poses is not None and (clip_poses.ndim != 2 or clip_poses.shape != (clip.shape[0], 4)):
                raise ValueError(f"{name}: poses must be ({clip.shape[0]}, 4) [x, y, z, yaw], got {clip_poses.shape}")
            clip_warped = self.warped[ci]
            if clip_warped is not None and clip_warped.shape != clip.shape:
                raise ValueError(f"{name}: warped tokens must be {clip.shape} like the tokens, got {clip_warped.shape}")
            if clip.shape[0] < n_frames:
                self.short_clips.append(self.clip_ids[ci])
            for start in range(0, clip.shape[0] - n_frames + 1, stride):
                self.index.append((ci, start))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | str]:
        ci, start = self.index[i]
        window = np.asarray(self.clips[ci][start : start + self.n_frames], dtype=np.int64)  # (n_frames, h, w)
        if self.vocab_size is not None and (window.min() < 0 or window.max() >= self.vocab_size):
            raise ValueError(
                f"TokenWindowDataset({self.source!r}) clip {self.clip_ids[ci]!r} frames {start}..{start + self.n_frames - 1}: "
                f"token values [{window.min()}, {window.max()}] outside the vocabulary [0, {self.vocab_size})"
            )
        clip_poses = self.poses[ci]
        if clip_poses is None:
            motion = unknown_motions(self.n_frames)
        else:
            motion = frame_motions(np.asarray(clip_poses[start : start + self.n_frames], dtype=np.float64)[:, [0, 1, 3]])
        clip_warped = self.warped[ci]
        if clip_warped is None:
            warped = np.full(window.shape, -1, dtype=np.int64)
        else:
            warped = np.asarray(clip_warped[start : start + self.n_frames], dtype=np.int64)  # (n_frames, h, w)
        return {
            "tokens": torch.from_numpy(window),
            "ego_motion": torch.from_numpy(motion),  # (n_frames, 3) float32, NaN = unknown
            "warped_prev": torch.from_numpy(warped),  # (n_frames, h, w) int64, -1 = unknown
            "clip_index": torch.tensor(ci, dtype=torch.int64),
            "start_frame": torch.tensor(start, dtype=torch.int64),
            "source": self.source,
        }


class MixingSampler(Sampler[int]):
    """Draws `num_samples` windows per epoch from named datasets with the given proportions.

    Indices refer to `self.dataset`, the ConcatDataset of `datasets` in mapping order. Each epoch
    gives every source its quota of the `num_samples` draws (proportion * num_samples, remainders
    to the largest fractions) in a seeded random order, so the realised mix of an epoch is the
    configured one to within one draw per source (a 1% source is never starved by chance); each
    draw takes that source's next window from a seeded permutation (windows repeat only after all
    of the source's windows were drawn). The order depends only on (seed, epoch); call `set_epoch` for a new epoch (Lightning
    does). `realised_counts` / `realised_proportions()` count the windows actually yielded since
    construction or `reset_counts()`.
    """

    def __init__(self, datasets: Mapping[str, Sized], proportions: Mapping[str, float], num_samples: int, seed: int = 0) -> None:
        if set(datasets) != set(proportions):
            raise ValueError(f"MixingSampler: datasets {sorted(datasets)} and proportions {sorted(proportions)} name different sources")
        if num_samples < 1:
            raise ValueError(f"MixingSampler: num_samples must be >= 1, got {num_samples}")
        self.names = list(datasets)
        weights = torch.tensor([float(proportions[n]) for n in self.names], dtype=torch.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"MixingSampler: proportions must be >= 0 and not all 0, got {dict(proportions)}")
        for name, w in zip(self.names, weights.tolist()):
            if w > 0 and len(datasets[name]) == 0:
                raise ValueError(f"MixingSampler: source {name!r} has proportion {w} but no windows")
        self.probabilities = weights / weights.sum()  # (S,)
        self.sizes = [len(datasets[n]) for n in self.names]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64).tolist()
        self.dataset = ConcatDataset([datasets[n] for n in self.names])
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0
        self.realised_counts = {n: 0 for n in self.names}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def reset_counts(self) -> None:
        self.realised_counts = {n: 0 for n in self.names}

    def realised_proportions(self) -> dict[str, float]:
        """Fraction of yielded windows per source (0 for all before any draw)."""
        total = sum(self.realised_counts.values())
        return {n: (c / total if total else 0.0) for n, c in self.realised_counts.items()}

    def __len__(self) -> int:
        return self.num_samples

    def _source_quotas(self) -> torch.Tensor:
        """(N,) int64 source ids, source s repeated its quota of the N draws (largest remainders)."""
        exact = self.probabilities * self.num_samples  # (S,)
        counts = exact.floor().to(torch.int64)
        short = self.num_samples - int(counts.sum())
        if short > 0:
            counts[torch.argsort(exact - counts, descending=True, stable=True)[:short]] += 1
        return torch.repeat_interleave(torch.arange(len(self.names)), counts)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        sources = self._source_quotas()[torch.randperm(self.num_samples, generator=generator)]  # (N,) source per draw
        indices = torch.empty(self.num_samples, dtype=torch.int64)
        for s, (size, offset) in enumerate(zip(self.sizes, self.offsets)):
            draws = (sources == s).nonzero().squeeze(-1)  # (n_s,) positions drawn from source s
            if len(draws) == 0:
                continue
            n_perms = -(-len(draws) // size)
            windows = torch.cat([torch.randperm(size, generator=generator) for _ in range(n_perms)])[: len(draws)]
            indices[draws] = windows + offset
        for source, index in zip(sources.tolist(), indices.tolist()):
            self.realised_counts[self.names[source]] += 1
            yield index
