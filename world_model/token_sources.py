"""Named token stores for world-model training: which stores, in what proportions, at what frame rate.

A source is one token store (`world_model.tokens.TokenStore`) with a mixing weight. All sources
must come from the same tokenizer (same weights, grid and codebook): mixing tokens of two
tokenizers would train on two incompatible vocabularies. Clips are subsampled to the model's frame
rate: a clip stored at k times that rate yields k interleaved clips (frames o, o+k, o+2k, ...), and
its ego poses (when the store has them) are subsampled alike, so motions are per model frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from world_model.tokens.reader import TokenStore
from world_model.tokens_dataset import TokenWindowDataset


@dataclass(frozen=True)
class TokenSource:
    """One token store and its mixing weight; weight None = proportional to its training windows."""

    name: str
    tokens: str
    weight: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.tokens:
            raise ValueError(f"token source needs a name and a `tokens` directory, got name={self.name!r} tokens={self.tokens!r}")
        if self.weight is not None and not float(self.weight) >= 0.0:
            raise ValueError(f"token source {self.name!r}: weight must be >= 0 or null, got {self.weight}")


def parse_sources(tokens: str | list[str] | None, sources: Mapping[str, Any] | None) -> list[TokenSource]:
    """Sources from `tokens=DIR[,DIR2]` (named after their directories, weights proportional to size)
    or from `sources={name: {tokens: DIR, weight: w}}`; exactly one of the two must be given."""
    sources = dict(sources or {})
    if tokens and sources:
        raise ValueError("give either `tokens=DIR[,DIR2]` or `sources.<name>.tokens=DIR`, not both")
    if tokens:
        dirs = [d.strip() for d in (tokens.split(",") if isinstance(tokens, str) else list(tokens)) if d.strip()]
        names: list[str] = []
        for d in dirs:
            base = Path(d).name or "tokens"
            name, k = base, 2
            while name in names:
                name, k = f"{base}_{k}", k + 1
            names.append(name)
        return [TokenSource(n, d) for n, d in zip(names, dirs)]
    if not sources:
        raise ValueError("no token stores given: pass `tokens=DIR[,DIR2]` or `sources.<name>.tokens=DIR`")
    out = []
    for name, spec in sources.items():
        spec = dict(spec or {})
        unknown = sorted(set(spec) - {"tokens", "weight"})
        if unknown:
            raise ValueError(f"sources.{name}: unknown keys {unknown}; known keys are ['tokens', 'weight']")
        if not spec.get("tokens"):
            raise ValueError(f"sources.{name}.tokens is not set: pass `sources.{name}.tokens=<token store dir>`")
        weight = spec.get("weight")
        out.append(TokenSource(str(name), str(spec["tokens"]), None if weight is None else float(weight)))
    return out


@dataclass(frozen=True)
class SourceWindows:
    """The training and validation windows of one source, and facts about its store."""

    name: str
    train: TokenWindowDataset
    val: TokenWindowDataset
    store_fps: tuple[float, ...]
    frame_step: int
    num_clips: int
    clips_with_poses: int = 0
    clips_with_warped: int = 0


@dataclass(frozen=True)
class TokenSpace:
    """What all sources share: tokenizer identity, grid (h, w) and codebook size."""

    tokenizer: dict[str, Any]
    grid_hw: tuple[int, int]
    codebook_size: int


def token_space(stores: Mapping[str, TokenStore]) -> TokenSpace:
    """The shared token space of the stores; ValueError naming two stores that disagree."""
    first_name, first = next(iter(stores.items()))
    for name, store in stores.items():
        a, b = first.tokenizer.get("weights_sha256"), store.tokenizer.get("weights_sha256")
        if a != b or store.grid_hw != first.grid_hw or store.codebook_size != first.codebook_size:
            raise ValueError(
                f"token stores {first.root} ({first_name}) and {store.root} ({name}) come from different tokenizers "
                f"(weights {str(a)[:12]} vs {str(b)[:12]}, grid {first.grid_hw} vs {store.grid_hw}, "
                f"codebook {first.codebook_size} vs {store.codebook_size}); tokenize every source with one tokenizer"
            )
    return TokenSpace(dict(first.tokenizer), first.grid_hw, first.codebook_size)


def frame_step(clip_fps: float, model_fps: float, where: str) -> int:
    """How many stored frames one model frame spans; ValueError unless clip_fps is a multiple of model_fps."""
    ratio = clip_fps / model_fps
    step = int(round(ratio))
    if step < 1 or abs(ratio - step) > 1e-3 * ratio:
        raise ValueError(f"{where} is stored at {clip_fps:g} fps, not a multiple of the model's {model_fps:g} fps")
    return step


def held_out_clips(num_clips: int, val_clips: int) -> np.ndarray:
    """(num_clips,) bool: `val_clips` clips evenly spaced over the store are held out for validation,
    unless the store has fewer than 2 * val_clips + 1 clips (then validation reuses training clips)."""
    held = np.zeros(num_clips, bool)
    if val_clips > 0 and num_clips > 2 * val_clips:
        held[np.linspace(0, num_clips - 1, val_clips).round().astype(np.int64)] = True
    return held


def source_windows(source: TokenSource, store: TokenStore, n_frames: int, fps: float | None, val_clips: int, codebook_size: int) -> SourceWindows:
    """Windows of n_frames model frames over the clips of one store, split by clip into train / val."""
    fps_values = sorted({float(store.meta(i)["fps"]) for i in range(len(store))})
    if fps is None and len(fps_values) > 1:
        raise ValueError(f"token store {store.root} mixes frame rates {fps_values}: set world_model.fps to choose one")
    held = held_out_clips(len(store), val_clips)
    parts: dict[bool, tuple[list[np.ndarray], list[str], list[np.ndarray | None], list[np.ndarray | None]]] = {
        False: ([], [], [], []), True: ([], [], [], [])}
    steps = set()
    with_poses = with_warped = 0
    for i in range(len(store)):
        meta = store.meta(i)
        step = 1 if fps is None else frame_step(float(meta["fps"]), fps, f"clip {meta['clip_id']} of {store.root}")
        steps.add(step)
        tokens = store.clip_tokens(i)  # (T, h, w) uint16 memmap
        poses = store.clip_poses(i)  # (T, 4) float32 or None
        with_poses += poses is not None
        # Warped tokens span one stored frame: they are the model's input only at the store's own rate.
        warped = store.clip_warped(i) if step == 1 else None  # (T, h, w) int32 or None
        with_warped += warped is not None
        splits = {False} if val_clips == 0 else ({False, True} if not held.any() else {bool(held[i])})
        for offset in range(step):
            for split in splits:
                parts[split][0].append(tokens[offset::step])
                parts[split][1].append(f"{meta['clip_id']}@{offset}" if step > 1 else meta["clip_id"])
                parts[split][2].append(None if poses is None else poses[offset::step])
                parts[split][3].append(warped)
    train, val = (
        TokenWindowDataset(parts[s][0], n_frames, source=source.name, clip_ids=parts[s][1], vocab_size=codebook_size, poses=parts[s][2], warped=parts[s][3])
        for s in (False, True)
    )
    if len(train) == 0:
        raise ValueError(f"token store {store.root} ({source.name}) has no clip of {n_frames} frames at the model's frame rate")
    return SourceWindows(source.name, train, val, tuple(fps_values), max(steps) if steps else 1, len(store), with_poses, with_warped)


def mixing_proportions(sources: list[TokenSource], windows: Mapping[str, SourceWindows]) -> dict[str, float]:
    """Normalised proportions: given weights as they are, null weights proportional to window counts
    (all null: uniform over all training windows). Mixing null and explicit weights is an error."""
    given = [s.weight is not None for s in sources]
    if any(given) and not all(given):
        raise ValueError("set a weight for every source or for none (then sources mix in proportion to their windows)")
    raw = {s.name: (float(s.weight) if s.weight is not None else float(len(windows[s.name].train))) for s in sources}
    total = sum(raw.values())
    if total <= 0:
        raise ValueError(f"source weights must not all be 0, got {raw}")
    return {name: w / total for name, w in raw.items()}
