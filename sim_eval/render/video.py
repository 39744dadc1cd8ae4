"""Writing rendered frames to video files, and tiling frames side by side."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

log = logging.getLogger(__name__)

_MP4_CODECS = ("libx264", "mpeg4")


def _check_frames(frames: Sequence[np.ndarray]) -> tuple[int, int]:
    if len(frames) == 0:
        raise ValueError("write_video: frames is empty")
    h, w = frames[0].shape[:2]
    for i, f in enumerate(frames):
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"write_video: frames[{i}] must be (H, W, 3) uint8, got {f.shape} {f.dtype}")
        if f.shape[:2] != (h, w):
            raise ValueError(f"write_video: frames[{i}] is {f.shape[:2]}, expected {(h, w)} like frames[0]")
    return h, w


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: pad one black row/column where needed."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))


def _write_mp4(frames: Sequence[np.ndarray], path: Path, fps: float, codec: str) -> None:
    import av  # PyAV loads FFmpeg's libraries: only when an mp4 is written (evaluations without videos never need it)

    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        first = _pad_even(frames[0])
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "20", "preset": "veryfast"}
        else:
            stream.bit_rate = 4_000_000
        for frame in frames:
            packet_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(_pad_even(frame)), format="rgb24")
            for packet in stream.encode(packet_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float = 10.0) -> Path:
    """Write frames to an animated GIF with imageio (looping forever)."""
    _check_frames(frames)
    if fps <= 0:
        raise ValueError(f"write_gif: fps must be > 0, got {fps}")
    path = Path(path)
    imageio.mimsave(path, list(frames), format="GIF", duration=1.0 / fps, loop=0)
    return path


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float = 10.0) -> Path:
    """Write (H, W, 3) uint8 RGB frames to `path` and return the path actually written.

    A .gif path writes a GIF. Otherwise an mp4 with PyAV, trying h264 (libx264) then mpeg4; if no
    encoder works, falls back to a GIF next to it (same stem, .gif suffix). Odd sides are padded by
    one black pixel for yuv420p.
    """
    _check_frames(frames)
    if fps <= 0:
        raise ValueError(f"write_video: fps must be > 0, got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        return write_gif(frames, path, fps)
    errors = []
    for codec in _MP4_CODECS:
        try:
            _write_mp4(frames, path, fps, codec)
            return path
        except Exception as exc:  # noqa: BLE001 - any encoder failure means: try the next one
            errors.append(f"{codec}: {exc}")
            path.unlink(missing_ok=True)
    gif_path = path.with_suffix(".gif")
    log.warning("write_video: no mp4 encoder worked (%s); writing %s instead", "; ".join(errors), gif_path)
    return write_gif(frames, gif_path, fps)


def side_by_side(*frames: np.ndarray, gap_px: int = 0, fill_rgb: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Tile (H_i, W_i, 3) uint8 images left to right, vertically centred on the tallest, with gap_px
    columns of fill_rgb between them. Returns (max H_i, sum W_i + gaps, 3) uint8."""
    if not frames:
        raise ValueError("side_by_side: needs at least one frame")
    for i, f in enumerate(frames):
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"side_by_side: frames[{i}] must be (H, W, 3) uint8, got {f.shape} {f.dtype}")
    if gap_px < 0:
        raise ValueError(f"side_by_side: gap_px must be >= 0, got {gap_px}")
    height = max(f.shape[0] for f in frames)
    width = sum(f.shape[1] for f in frames) + gap_px * (len(frames) - 1)
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = fill_rgb
    x = 0
    for f in frames:
        y = (height - f.shape[0]) // 2
        out[y:y + f.shape[0], x:x + f.shape[1]] = f
        x += f.shape[1] + gap_px
    return out
