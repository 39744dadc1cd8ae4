"""Typed, validated settings of the `foresight data ...` commands: the frame keys every conversion
shares (configs/data/frames.yaml), and the checks each command's own settings use.

Config validation at the edge: a command builds its settings before any work starts, and a bad
value (wrong kind, NaN / inf, out of range) is a ValueError that names the key. Defaults live in the
YAML only; these dataclasses have none.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from data.image import FRAME_CODECS

MAX_FRAME_SIDE_PX = 8192  # a frame side beyond this is a typo, not a request (one 8192^2 frame is 200 MB)


def check_int(key: str, value: Any, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high]; ValueError "<key> must be ..." otherwise (bools and floats,
    even integral ones, are refused: `height=64.0` is as likely a typo as `height=nan`)."""
    in_range = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    if not in_range:
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{key} must be an integer {bound}, got {value!r}")
    return value


def check_real(key: str, value: Any, low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False) -> float:
    """`value` (an int or float) as a finite float in the interval from `low` to `high` (open ends
    where `low_open` / `high_open`); ValueError naming `key` otherwise."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        bound = ("> " if low_open else ">= ") + f"{low:g}"
        if high is not None:
            bound += (" and < " if high_open else " and <= ") + f"{high:g}"
        raise ValueError(f"{key} must be a finite number {bound}, got {value!r}")
    return float(value)


def check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):  # a bad config value is a ValueError, which the CLI reports as bad input
        raise ValueError(f"{key} must be true or false, got {value!r}")  # noqa: TRY004
    return value


def set_field(obj: Any, key: str, value: Any) -> None:
    """Store a checked (e.g. int -> float) value on a frozen dataclass from its __post_init__."""
    object.__setattr__(obj, key, value)


@dataclass(frozen=True)
class FrameSettings:
    """The frame and store keys of every conversion (configs/data/frames.yaml).

    height, width: stored frame size [px]; fps: target frame rate [Hz]; codec: jpeg | png | raw;
    jpeg_quality: 1-100; clips_per_shard: clips per safetensors shard; min_clip_frames /
    max_clip_frames: segment limits (max 0 = unlimited, else >= min); overwrite: replace a store
    made with another configuration; workers: processes converting items at once (0 = one per
    core; the store is the same for any number). A command's settings extend this class with its
    own keys.
    """

    height: int
    width: int
    fps: float
    codec: str
    jpeg_quality: int
    clips_per_shard: int
    max_clip_frames: int
    min_clip_frames: int
    overwrite: bool
    workers: int

    def __post_init__(self) -> None:
        check_int("height", self.height, 1, MAX_FRAME_SIDE_PX)
        check_int("width", self.width, 1, MAX_FRAME_SIDE_PX)
        set_field(self, "fps", check_real("fps", self.fps, 0.0, low_open=True))
        if self.codec not in FRAME_CODECS:
            raise ValueError(f"codec must be one of {FRAME_CODECS}, got {self.codec!r}")
        check_int("jpeg_quality", self.jpeg_quality, 1, 100)
        check_int("clips_per_shard", self.clips_per_shard, 1)
        check_int("min_clip_frames", self.min_clip_frames, 1)
        check_int("max_clip_frames", self.max_clip_frames, 0)
        if 0 < self.max_clip_frames < self.min_clip_frames:
            raise ValueError(f"max_clip_frames must be 0 (unlimited) or >= min_clip_frames ({self.min_clip_frames}), got {self.max_clip_frames}")
        check_bool("overwrite", self.overwrite)
        check_int("workers", self.workers, 0)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> FrameSettings:
        """The frame keys of a composed `data` command config (frames.yaml sits at its top level)."""
        names = [f.name for f in dataclasses.fields(FrameSettings)]
        missing = [n for n in names if n not in cfg]
        if missing:
            raise ValueError(f"missing frame keys {missing} (configs/data/frames.yaml)")
        return FrameSettings(**{n: cfg[n] for n in names})
