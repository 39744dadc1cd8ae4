"""`foresight bench data`: read speed of the window Dataset per frame codec (one JSON object).

Builds the same clips in a temporary store once per codec (jpeg, png, raw) and times one worker
reading every window: windows/s, MB/s of decoded frames delivered, and bytes on disk per frame.
Frames are rendered road-like images (smooth gradients, lane lines, boxes) so compression ratios are
realistic; `source=<clip store>` benchmarks an existing store instead.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from data.dataset import ClipWindowDataset, WindowSpec
from data.ego_motion import PoseStream
from data.schema import Clip
from data.store.reader import ClipStore
from data.store.writer import ClipStoreWriter


def road_like_clip(clip_id: str, num_frames: int, height: int, width: int, seed: int) -> Clip:
    """A clip of simple perspective road frames moving forward at 8 m/s with 2 Hz frames."""
    rng = np.random.default_rng(seed)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    horizon = height // 2
    sky = np.linspace(200, 150, horizon)[:, None, None] * np.array([0.8, 0.9, 1.0])
    for t in range(num_frames):
        img = np.empty((height, width, 3), np.float64)
        img[:horizon] = sky
        img[horizon:] = np.array([95, 95, 100]) + rng.normal(0, 4, (height - horizon, width, 3))
        f = frames[t]
        f[:] = img.clip(0, 255).astype(np.uint8)
        for side in (-1, 1):
            cv2.line(f, (width // 2, horizon), (width // 2 + side * width, height), (240, 240, 240), max(1, width // 100))
        phase = (t * 4.0) % 9.0
        for d in np.arange(3.0 - phase, 60.0, 9.0):
            if d <= 1.0:
                continue
            y0, y1 = horizon + int(height * 1.5 / (d + 3)), horizon + int(height * 1.5 / (d + 0.5))
            cv2.line(f, (width // 2, min(y0, height - 1)), (width // 2, min(y1, height - 1)), (240, 240, 240), 2)
        cx = width // 2 + int(rng.integers(-width // 8, width // 8))
        cv2.rectangle(f, (cx - width // 16, horizon - height // 20), (cx + width // 16, horizon + height // 12), (30, 60, 150), -1)
    ts = np.arange(num_frames, dtype=np.int64) * 500_000
    dense = np.arange(num_frames * 5, dtype=np.int64) * 100_000
    poses = PoseStream(dense, np.c_[dense * 8e-6, np.zeros((len(dense), 2))], np.zeros(len(dense)))
    return Clip(clip_id, "bench", frames, ts, 2.0, poses=poses)


def time_store(store: ClipStore, spec: WindowSpec, max_windows: int) -> dict[str, float]:
    ds = ClipWindowDataset(store, spec)
    n = min(len(ds), max_windows)
    ds[0]  # open handles, warm caches
    start = time.perf_counter()
    nbytes = 0
    for i in range(n):
        nbytes += ds[i]["frames"].numel()
    dt = time.perf_counter() - start
    return {"windows_per_s": n / dt, "mb_per_s": nbytes / dt / 1e6, "windows": n}


def run(cfg) -> dict:
    spec = WindowSpec(n_frames=int(cfg.n_frames), fps=2.0)
    results: dict[str, dict] = {}
    if cfg.source:
        store = ClipStore(cfg.source)
        results[store.manifest.codec] = time_store(store, spec, int(cfg.max_windows))
    else:
        clips = [road_like_clip(f"c{i}", int(cfg.frames_per_clip), int(cfg.height), int(cfg.width), i) for i in range(int(cfg.clips))]
        with tempfile.TemporaryDirectory() as tmp:
            for codec in cfg.codecs:
                out = Path(tmp) / codec
                t0 = time.perf_counter()
                with ClipStoreWriter(out, "bench", {"codec": codec}, codec=codec) as w:
                    for c in clips:
                        w.add(c.clip_id, [c])
                write_s = time.perf_counter() - t0
                store = ClipStore(out)
                frames = store.manifest.num_frames
                r = time_store(store, spec, int(cfg.max_windows))
                r["bytes_per_frame"] = sum(s.bytes for s in store.manifest.shards) / frames
                r["write_frames_per_s"] = frames / write_s
                results[codec] = r
    base = results.get("raw")
    out = {
        "image_hw": [int(cfg.height), int(cfg.width)],
        "n_frames": spec.n_frames,
        "codecs": results,
    }
    if base:
        out["windows_per_s_ratio_vs_raw"] = {k: v["windows_per_s"] / base["windows_per_s"] for k, v in results.items()}
    print(json.dumps(out, indent=1))
    return out
