"""Shared helpers of the world-model tests: one thread per test process, token stores written in the
real format, moving-pattern token clips, and composing the real command configs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from world_model.tokens.manifest import TokenStoreManifest
from world_model.tokens.writer import TokenStoreWriter


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models on a shared 2-core machine: one thread avoids OpenMP contention stalls.
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


# Small GPT and fast settings for `foresight train world_model` in tests (Hydra overrides).
SMALL_WORLD_MODEL = [
    "+world_model.model.n_layer=2", "+world_model.model.n_embd=32", "+world_model.model.n_head=2",
    "world_model.batch_size=4", "world_model.val_clips=1", "world_model.val_windows=4",
    "world_model.log_every_n_steps=1", "world_model.num_workers=0", "trainer.progress_bar=false",
]

DASH, VOCAB, GRID_HW = 1, 8, (6, 2)


def dash_clip(n_frames: int, start_row: int, speed_rows: int, grid_hw: tuple[int, int] = GRID_HW) -> np.ndarray:
    """(T, h, w) uint16 tokens: a static background (2 + row % 3) crossed by a road-marking-like dash
    (token 1, a whole row) that moves `speed_rows` rows down per frame, wrapping around."""
    h, w = grid_hw
    clip = np.broadcast_to((2 + np.arange(h) % 3)[None, :, None], (n_frames, h, w)).astype(np.uint16).copy()
    for t in range(n_frames):
        clip[t, (start_row + speed_rows * t) % h] = DASH
    return clip


def dash_rows(frames: torch.Tensor) -> torch.Tensor:
    """(..., T, h, w) tokens -> (..., T) the row holding the dash (the row most covered by it)."""
    return (frames == DASH).sum(dim=-1).argmax(dim=-1)


def write_token_store(out: Path, clips: list[np.ndarray], fps: float, tokenizer_sha: str = "a" * 64, vocab: int = VOCAB,
                      poses: list[np.ndarray] | None = None, warped: list[np.ndarray] | None = None) -> Path:
    """A token store in the real on-disk format (manifest + one .npy per clip), as `data tokenize` writes;
    with per-clip poses (T, 4) and warped previous-frame tokens (T, h, w) when given."""
    grid = tuple(int(s) for s in clips[0].shape[1:])
    header = TokenStoreManifest(
        tokenizer={"architecture": "test-tokens", "weights_sha256": tokenizer_sha, "precision": "fp32"},
        source={"path": f"{out}-clips", "manifest_sha256": hashlib.sha256(str(out).encode()).hexdigest(), "num_clips": len(clips)},
        grid_hw=grid,
        codebook_size=vocab,
    )
    writer = TokenStoreWriter(out, header)
    for i, clip in enumerate(clips):
        writer.write_clip(i, f"clip{i:03d}", fps, clip, None if poses is None else poses[i], None if warped is None else warped[i])
    writer.merge(len(clips))
    return out


def dash_store(out: Path, n_clips: int, n_frames: int, fps: float, speeds: tuple[int, ...] = (1, 2), seed: int = 0) -> Path:
    """A token store of dash clips with random start rows and speeds drawn from `speeds` (rows per frame)."""
    rng = np.random.default_rng(seed)
    clips = [dash_clip(n_frames, int(rng.integers(GRID_HW[0])), int(rng.choice(speeds))) for _ in range(n_clips)]
    return write_token_store(out, clips, fps)


def world_model_config(overrides: list[str], trainer: str = "cpu"):
    """The validated `train world_model` config for these overrides (on top of SMALL_WORLD_MODEL)."""
    from configs import compose
    from world_model.train_config import TrainWorldModelConfig

    return TrainWorldModelConfig.from_config(compose("train/world_model", [*SMALL_WORLD_MODEL, f"trainer={trainer}", *overrides]))
