"""Single frames of a clip store for tokenizer training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from data.store.reader import ClipStore


def all_frame_refs(store: ClipStore) -> np.ndarray:
    """(N, 2) int64 [clip index, frame index] of every frame in the store, in store order."""
    refs = [np.stack([np.full(r.num_frames, ci), np.arange(r.num_frames)], axis=1) for ci, r in enumerate(store.refs)]
    return np.concatenate(refs).astype(np.int64) if refs else np.zeros((0, 2), np.int64)


def evenly_spaced(refs: np.ndarray, count: int) -> np.ndarray:
    """At most `count` rows of `refs` spread evenly over it (deterministic)."""
    if count >= len(refs):
        return refs
    return refs[np.linspace(0, len(refs) - 1, count).round().astype(np.int64)]


@dataclass(frozen=True)
class FrameSplit:
    """Disjoint (N, 2) [clip, frame] references for training and validation."""

    train: np.ndarray
    val: np.ndarray

    def __post_init__(self) -> None:
        if len(self.train) == 0:
            raise ValueError("frame split: no training frames")


def split_frames(store: ClipStore, val_frames: int) -> FrameSplit:
    """Validation = `val_frames` frames evenly spaced over the store; training = the rest, or every
    frame when the store has fewer than 2 * val_frames (tiny stores overfit on purpose)."""
    refs = all_frame_refs(store)
    if len(refs) == 0:
        raise ValueError(f"clip store {store.root} holds no frames")
    val = evenly_spaced(refs, val_frames) if val_frames > 0 else refs[:0]
    if len(refs) < 2 * val_frames:
        return FrameSplit(refs, val)
    keep = np.ones(len(refs), bool)
    keep[np.linspace(0, len(refs) - 1, len(val)).round().astype(np.int64)] = False
    return FrameSplit(refs[keep], val)


class StoreFrameDataset(Dataset):
    """Item i -> (H, W, 3) uint8 tensor: frame refs[i] = [clip, frame] of the store.

    All referenced clips must share one frame size (batches stack them); checked up front.
    """

    def __init__(self, store: ClipStore | str | Path, refs: np.ndarray | None = None) -> None:
        self.store = store if isinstance(store, ClipStore) else ClipStore(store)
        self.refs = all_frame_refs(self.store) if refs is None else np.asarray(refs, dtype=np.int64)
        sizes = {(int(self.store.meta(c)["height"]), int(self.store.meta(c)["width"])) for c in np.unique(self.refs[:, 0])}
        if len(sizes) > 1:
            raise ValueError(f"clip store {self.store.root} mixes frame sizes {sorted(sizes)}; convert it at one size")

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> torch.Tensor:
        clip, frame = self.refs[i]
        return torch.from_numpy(self.store.load_frames(int(clip), [int(frame)])[0])
