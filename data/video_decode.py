"""Frames of a video file at a target rate and size, decoded sequentially with PyAV.

The video is decoded once from its start (no seeking: seeks land on keyframes and are unreliable in
badly muxed web videos), with FFmpeg's frame and slice threads. Of the decoded frames inside
[start_s, end_s), the one nearest each point of the uniform grid start_s + k / fps (k = 0, 1, ...
while the point is < end_s) is kept; only kept frames leave the decoder's YUV: swscale resizes
each in YUV to the output size (area filter when shrinking, bilinear when enlarging, no crop) and
converts the small frame to RGB, so a conversion at 2 Hz of a 30 fps video costs little beyond
decoding it.
Frames are handed out in chunks, so memory stays bounded for hour-long videos. Timestamps are
microseconds from the start of the video stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from data.errors import BadFileReporter, CorruptFileError, MissingFileError
from data.image import check_source_pixels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream.

    duration_s: length from the stream start [s] (None if the container does not say);
    fps: average frame rate [1/s] (None if unknown); size_hw: coded (height, width) [px].
    """

    path: Path
    duration_s: float | None
    fps: float | None
    size_hw: tuple[int, int]
    codec: str


@dataclass(frozen=True)
class FrameChunk:
    """Consecutive kept frames: frames (N, H, W, 3) uint8 RGB; timestamps_us (N,) int64 from the
    video start, strictly increasing; source_indices (N,) int64 presentation index of each frame
    among all decoded frames of the video."""

    frames: np.ndarray
    timestamps_us: np.ndarray
    source_indices: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.frames)
        if self.frames.ndim != 4 or self.frames.dtype != np.uint8 or self.frames.shape[-1] != 3:
            raise ValueError(f"FrameChunk.frames must be (N, H, W, 3) uint8, got {self.frames.shape} {self.frames.dtype}")
        if self.timestamps_us.shape != (n,) or self.source_indices.shape != (n,):
            raise ValueError(f"FrameChunk: {n} frames but timestamps {self.timestamps_us.shape}, indices {self.source_indices.shape}")


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise MissingFileError(f"video file not found: {path}")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError) as exc:
        raise CorruptFileError(f"cannot open video {path} (truncated or not a video?): {exc}") from exc
    if not container.streams.video:
        container.close()
        raise CorruptFileError(f"video file {path} has no video stream")
    ctx = container.streams.video[0].codec_context
    try:
        check_source_pixels(int(ctx.width), int(ctx.height), f"video {path}")
    except CorruptFileError:
        container.close()
        raise
    return container


def _stream_duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def probe_video(path: str | Path, scan_if_unknown: bool = True) -> VideoInfo:
    """Read the header of `path`; if it gives no duration and `scan_if_unknown`, find the duration by
    demuxing every packet (reads the whole file but decodes nothing).

    Raises MissingFileError / CorruptFileError naming the file.
    """
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        duration = _stream_duration_s(container, stream)
        if duration is None and scan_if_unknown:
            duration = _scan_duration_s(path, container, stream)
        rate = stream.average_rate or stream.guessed_rate
        ctx = stream.codec_context
        return VideoInfo(path, duration, float(rate) if rate else None, (int(ctx.height), int(ctx.width)), ctx.name)
    finally:
        container.close()


def _scan_duration_s(path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    start = stream.start_time
    end = None
    try:
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            if start is None:
                start = packet.pts
            stop = packet.pts + (packet.duration or 0)
            end = stop if end is None else max(end, stop)
    except av.FFmpegError as exc:
        raise CorruptFileError(f"cannot read video {path} while measuring its length: {exc}") from exc
    if end is None or stream.time_base is None:
        return None
    return float((end - (start or 0)) * stream.time_base)


class _GridPicker:
    """Streaming choice of the frame nearest each grid time (all times in microseconds).

    Feed frames in increasing time with `offer`; each grid point takes the nearer of the frames just
    before and at/after it (ties: the later), if within half a period. A frame chosen by two grid
    points (a source slower than the target rate) is kept once.
    """

    def __init__(self, start_us: int, end_us: int | None, fps: float) -> None:
        self.start_us, self.end_us = start_us, end_us
        self.period_us = 1e6 / fps
        self.tol_us = 0.5 * self.period_us
        self.k = 0
        self.prev: tuple[int, int, object] | None = None  # (time, source index, frame)
        self.last_kept_index = -1

    def grid(self, k: int) -> int:
        return self.start_us + int(round(k * self.period_us))

    def _grid_open(self) -> bool:
        return self.end_us is None or self.grid(self.k) < self.end_us

    def offer(self, t_us: int, index: int, frame: object) -> list[tuple[int, int, object]]:
        """Frames to keep now, given a new frame at `t_us` (must be inside [start, end))."""
        kept = []
        while self._grid_open() and self.grid(self.k) <= t_us:
            g = self.grid(self.k)
            best = (t_us, index, frame)
            if self.prev is not None and g - self.prev[0] < t_us - g:
                best = self.prev
            self._keep(best, g, kept)
            self.k += 1
        self.prev = (t_us, index, frame)
        return kept

    def finish(self, frame_step_us: float | None) -> list[tuple[int, int, object]]:
        """Grid points after the last frame that fall while it is still shown (before its time plus
        one source frame period, `frame_step_us`; half a target period if that is unknown)."""
        kept = []
        shown_us = self.tol_us if not frame_step_us else frame_step_us
        # 1 us of slack: frame times are rounded to whole microseconds.
        while self.prev is not None and self._grid_open() and self.grid(self.k) < self.prev[0] + shown_us - 1:
            self._keep(self.prev, self.grid(self.k), kept)
            self.k += 1
        return kept

    def unfilled_from_us(self) -> int | None:
        """First grid time that no frame served after `finish` (None if the grid is complete)."""
        return self.grid(self.k) if self._grid_open() else None

    def _keep(self, cand: tuple[int, int, object], g: int, kept: list) -> None:
        if abs(cand[0] - g) <= self.tol_us and cand[1] != self.last_kept_index:
            kept.append(cand)
            self.last_kept_index = cand[1]


def decode_at_rate(
    path: str | Path,
    fps: float,
    height: int,
    width: int,
    start_s: float = 0.0,
    end_s: float | None = None,
    on_bad_file: BadFileReporter | None = None,
    chunk_frames: int = 64,
    threads: int = 0,
) -> Iterator[FrameChunk]:
    """Yield the frames of `path` nearest the grid start_s + k / fps, k >= 0, grid point < end_s.

    Only frames with start_s <= t < end_s are used, so no kept frame lies in the trimmed parts
    (end_s None: to the end of the video). Grid points with no frame within half a period (a
    hole in the video) are left out; callers split clips there. Frames are resized to
    (height, width). threads: decoder threads (0: FFmpeg picks, one per core; 1: none, for one
    worker per core). A file that cannot be opened or decodes no frame at all raises
    CorruptFileError naming it; a video that breaks off or fails midway keeps what was decoded and
    reports the file and reason through `on_bad_file` (raises if it is None).
    """
    if fps <= 0 or height <= 0 or width <= 0 or chunk_frames < 1:
        raise ValueError(f"decode_at_rate: need fps, height, width, chunk_frames > 0; got {fps}, {height}, {width}, {chunk_frames}")
    if start_s < 0 or (end_s is not None and end_s <= start_s):
        raise ValueError(f"decode_at_rate: need 0 <= start_s < end_s, got {start_s}, {end_s}")
    path = Path(path)
    start_us = int(round(start_s * 1e6))
    end_us = None if end_s is None else int(round(end_s * 1e6))
    picker = _GridPicker(start_us, end_us, fps)
    frames: list[np.ndarray] = []
    times: list[int] = []
    indices: list[int] = []

    def take(kept: list[tuple[int, int, object]]) -> Iterator[FrameChunk]:
        for t, i, vf in kept:
            frames.append(rgb_at_size(vf, height, width))
            times.append(t)
            indices.append(i)
            if len(frames) >= chunk_frames:
                yield flush()

    def flush() -> FrameChunk:
        chunk = FrameChunk(np.stack(frames), np.asarray(times, np.int64), np.asarray(indices, np.int64))
        frames.clear()
        times.clear()
        indices.clear()
        return chunk

    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads; decoded frames are the same bytes for any count
        if threads > 0:  # else FFmpeg's own choice (one per core)
            stream.codec_context.thread_count = threads
        header_duration_s = _stream_duration_s(container, stream)
        time_base = stream.time_base or Fraction(1, 1_000_000)
        origin = stream.start_time
        fallback_step = 1.0 / float(stream.average_rate) if stream.average_rate else None
        decoded, last_us, decode_failed = 0, None, False
        try:
            for vf in container.decode(stream):
                if origin is None and vf.pts is not None:
                    origin = vf.pts  # no stream start in the header: time runs from the first frame
                t_us = _frame_time_us(vf, time_base, origin, last_us, fallback_step)
                if t_us is None:
                    continue  # no timestamp and no rate to infer one from
                index = decoded
                decoded += 1
                if last_us is not None and t_us <= last_us:
                    continue  # repeated or out-of-order timestamp: keep the time axis monotonic
                last_us = t_us
                if t_us < start_us:
                    continue
                if end_us is not None and t_us >= end_us:
                    break
                yield from take(picker.offer(t_us, index, vf))
        except av.FFmpegError as exc:
            if decoded == 0:
                raise CorruptFileError(f"cannot decode any frame of video {path}: {exc}") from exc
            # FFmpeg's words for it depend on the decoder's thread count (so would the store's): logged only.
            log.warning("video %s: decoding failed after %d frames: %s", path, decoded, exc)
            decode_failed = True
        if decoded == 0:
            raise CorruptFileError(f"video {path} holds no decodable frame (empty or truncated)")
        yield from take(picker.finish(None if fallback_step is None else fallback_step * 1e6))
        failure = _break_off(picker, last_us, header_duration_s, fallback_step, decode_failed)
        if failure is not None:
            if on_bad_file is None:
                raise CorruptFileError(f"video {path}: {failure}")
            on_bad_file(path, failure)
        if frames:
            yield flush()
    finally:
        container.close()


def rgb_at_size(vf: av.VideoFrame, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB of a decoded frame: resized in the decoder's own pixel format
    (area filter when shrinking, bilinear otherwise), then converted to RGB at the output size.
    Both are swscale passes; scaling and converting in one pass is faster still but darkens by
    about 2 grey levels (its low-precision path)."""
    if (vf.height, vf.width) != (height, width):
        shrink = height < vf.height or width < vf.width
        vf = vf.reformat(width=width, height=height, interpolation="AREA" if shrink else "BILINEAR")
    return np.ascontiguousarray(vf.to_ndarray(format="rgb24"))


def _frame_time_us(vf, time_base: Fraction, origin: int | None, last_us: int | None, step_s: float | None) -> int | None:
    if vf.pts is not None:
        tb = vf.time_base or time_base
        return int(round(float((vf.pts - (origin or 0)) * tb) * 1e6))
    if last_us is None:
        return 0
    return None if step_s is None else last_us + int(round(step_s * 1e6))


def _break_off(picker: _GridPicker, last_us: int | None, header_s: float | None, step_s: float | None, decode_failed: bool) -> str | None:
    """Why the video ends early, or None: decoding failed, or the grid stops clearly (> 1 s, or one
    target period) before the header's duration (the slack absorbs container durations that count
    a longer audio track). One message for both, since which of the two a truncated file gives
    depends on the decoder's thread count, and the store must not."""
    missing_us = picker.unfilled_from_us()
    truncated = False
    if missing_us is not None and header_s is not None and last_us is not None:
        # The last frame starts one frame period before the end of the stream.
        expected_last_us = header_s * 1e6 - (step_s or 0.0) * 1e6
        truncated = last_us + max(picker.period_us, 1e6) < expected_last_us
    if not (decode_failed or truncated):
        return None  # the stream is as long as its header says; end_s simply lies beyond it
    at = "its first frame" if last_us is None else f"{last_us / 1e6:.2f} s"
    header = "" if header_s is None else f" of the {header_s:.2f} s its header says"
    kept = "kept every frame before it" if missing_us is None else f"kept the frames before {missing_us / 1e6:.2f} s"
    return f"video breaks off at {at}{header} (decoding failed or truncated download); {kept}"
