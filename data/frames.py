"""Turning a camera's image stream into clip frames at a target rate and size.

Shared by every log-based source: pick the images nearest a uniform time grid at `fps`, decode and
resize them, drop images that fail to decode (reporting each by name), and split into contiguous
segments wherever the stream has a gap, so every clip has a steady frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from data.errors import BadFileReporter, DataError
from data.image import read_image_rgb, resize_rgb


@dataclass(frozen=True)
class FrameSegment:
    """Contiguous frames at the target rate: frames (T, H, W, 3) uint8, timestamps_us (T,),
    source_indices (T,) positions in the caller's image list, original (H, W) of the source images."""

    frames: np.ndarray
    timestamps_us: np.ndarray
    source_indices: np.ndarray
    source_size_hw: tuple[int, int]


def select_at_rate(timestamps_us: np.ndarray, fps: float, tolerance: float = 0.25) -> np.ndarray:
    """Indices of images one period (1 / fps) apart, chosen greedily from the first image.

    The next image is the one nearest `last + period`, accepted if it is at most `tolerance`
    periods away (ties go to the later image); the selection follows the source's own clock (nuScenes keyframes drift around
    2 Hz; a dropped 10 Hz image shifts later picks by 0.1 s instead of leaving a hole). Where no
    image is close enough, the selection restarts at the first image after the slot: a gap that
    `split_at_gaps` later cuts at. A source slower than `fps` keeps every image. `timestamps_us`
    must be sorted; returns strictly increasing indices.

    For a source much faster than `fps` the tolerance shrinks to half the source's own median
    interval, so a 10 Hz stream yields exact 0.5 s steps (never a 0.4 s step at the end).
    """
    ts = np.asarray(timestamps_us, dtype=np.int64)
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64)
    period = 1e6 / fps
    tol = tolerance * period
    if len(ts) > 1:
        tol = min(tol, 0.5 * float(np.median(np.diff(ts))))
    chosen = [0]
    while True:
        target = ts[chosen[-1]] + period
        j = int(np.searchsorted(ts, target))
        candidates = [c for c in (j - 1, j) if chosen[-1] < c < len(ts)]
        if not candidates:
            break
        best = min(reversed(candidates), key=lambda c: abs(ts[c] - target))
        if abs(ts[best] - target) > tol and ts[best] < target:
            after = int(np.searchsorted(ts, target + tol, side="right"))
            if after >= len(ts):
                break
            best = after  # nothing near the slot: a gap, restart after it
        chosen.append(best)
    return np.asarray(chosen, dtype=np.int64)


def split_at_gaps(timestamps_us: np.ndarray, fps: float, max_gap_periods: float = 1.5) -> list[np.ndarray]:
    """Split positions 0..n-1 into runs whose consecutive timestamps are < max_gap_periods apart."""
    ts = np.asarray(timestamps_us, dtype=np.int64)
    if len(ts) == 0:
        return []
    breaks = np.nonzero(np.diff(ts) > max_gap_periods * 1e6 / fps)[0] + 1
    return np.split(np.arange(len(ts)), breaks)


def load_frames_at_rate(
    timestamps_us: Sequence[int],
    paths: Sequence[str | Path],
    fps: float,
    height: int,
    width: int,
    on_bad_file: BadFileReporter,
    min_frames: int = 1,
    max_frames: int | None = None,
) -> list[FrameSegment]:
    """Decode the images selected at `fps`, resized to (height, width), as gap-free segments.

    Images that are missing or corrupt are reported through `on_bad_file(path, reason)` and dropped.
    Segments shorter than `min_frames` are dropped; longer than `max_frames` are cut into chunks.
    """
    ts = np.asarray(timestamps_us, dtype=np.int64)
    if len(ts) != len(paths):
        raise ValueError(f"{len(ts)} timestamps for {len(paths)} image paths")
    order = np.argsort(ts, kind="stable")
    chosen = order[select_at_rate(ts[order], fps)]
    frames, kept = [], []
    source_hw: tuple[int, int] | None = None
    chosen_set = set(chosen.tolist())
    period_us = 1e6 / fps
    for i in chosen:
        img, i = _read_or_neighbour(i, order, ts, paths, chosen_set, 0.25 * period_us, on_bad_file)
        if img is None:
            continue
        path = Path(paths[i])
        if source_hw is None:
            source_hw = img.shape[:2]
        elif img.shape[:2] != source_hw:
            on_bad_file(path, f"image size {img.shape[:2]} differs from the stream's {source_hw}")
            continue
        frames.append(resize_rgb(img, height, width))
        kept.append(i)
    if not kept:
        return []
    kept_arr = np.asarray(kept)
    stack = np.stack(frames)
    segments = []
    for run in split_at_gaps(ts[kept_arr], fps):
        chunks = [run] if not max_frames else [run[a : a + max_frames] for a in range(0, len(run), max_frames)]
        for c in chunks:
            if len(c) >= min_frames:
                segments.append(FrameSegment(stack[c], ts[kept_arr[c]], kept_arr[c], source_hw))
    return segments


def _read_or_neighbour(i, order, ts, paths, taken, max_shift_us, on_bad_file):
    """Decode image `i`; if it is bad, report it and try its unselected neighbours in time
    (within `max_shift_us`), so one bad 10 Hz image does not cut a 2 Hz clip. Returns (image, index)."""
    try:
        return read_image_rgb(Path(paths[i])), i
    except DataError as exc:
        on_bad_file(Path(paths[i]), str(exc))
    pos = int(np.nonzero(order == i)[0][0])
    for p in sorted((pos - 1, pos + 1), key=lambda q: abs(ts[order[q]] - ts[i]) if 0 <= q < len(order) else 0):
        if not 0 <= p < len(order):
            continue
        j = int(order[p])
        if j in taken or abs(int(ts[j]) - int(ts[i])) > max_shift_us:
            continue
        try:
            img = read_image_rgb(Path(paths[j]))
        except DataError as exc:
            on_bad_file(Path(paths[j]), str(exc))
            continue
        taken.add(j)
        return img, j
    return None, i
