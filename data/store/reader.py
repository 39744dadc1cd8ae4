"""Random-access reading of a clip store.

File handles are opened lazily and per process (safetensors memory-maps the shard), so a store
object can be handed to DataLoader workers: each worker opens its own handles after the fork.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from safetensors import safe_open

from data.ego_motion import PoseStream
from data.errors import CorruptFileError
from data.image import decode_frame
from data.schema import Clip
from data.store.manifest import Manifest, sha256_file
from data.store.shard_format import clip_from_parts, decode_header, pose_stream_from


@dataclass(frozen=True)
class ClipRef:
    """Where clip number `index` of the store lives."""

    shard: str
    slot: int
    clip_id: str
    num_frames: int


class ClipStore:
    """Read-only view of a clip store directory."""

    def __init__(self, root: str | Path, verify: bool = False) -> None:
        self.root = Path(root)
        self.manifest = Manifest.load(self.root)
        self.refs = [
            ClipRef(s.file, slot, cid, n)
            for s in self.manifest.shards
            for slot, (cid, n) in enumerate(zip(s.clip_ids, s.clip_num_frames))
        ]
        self._pid = -1
        self._handles: dict[str, Any] = {}
        self._headers: dict[str, tuple[list[dict[str, Any]], str]] = {}
        if verify:
            self.verify()

    def __len__(self) -> int:
        return len(self.refs)

    def __iter__(self) -> Iterator[Clip]:
        for i in range(len(self)):
            yield self.load_clip(i)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        state["_pid"] = -1
        return state

    def verify(self) -> None:
        """Check every shard's size and SHA-256 against the manifest."""
        for s in self.manifest.shards:
            path = self.root / s.file
            if not path.is_file():
                raise CorruptFileError(f"shard listed in the manifest is missing: {path}")
            if path.stat().st_size != s.bytes or sha256_file(path) != s.sha256:
                raise CorruptFileError(f"shard {path} does not match its manifest checksum")

    def _handle(self, shard: str):
        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        h = self._handles.get(shard)
        if h is None:
            path = self.root / shard
            try:
                h = safe_open(str(path), framework="np")
            except Exception as exc:
                raise CorruptFileError(f"cannot open shard {path}: {exc}") from exc
            self._handles[shard] = h
        return h

    def _header(self, shard: str) -> tuple[list[dict[str, Any]], str]:
        if shard not in self._headers:
            self._headers[shard] = decode_header(self._handle(shard).metadata(), str(self.root / shard))
        return self._headers[shard]

    def meta(self, index: int) -> dict[str, Any]:
        """Per-clip metadata (ids, fps, size, intrinsics, provenance, ...)."""
        ref = self.refs[index]
        return self._header(ref.shard)[0][ref.slot]

    def _get(self, index: int):
        ref = self.refs[index]
        h = self._handle(ref.shard)
        return (lambda name: h.get_tensor(name)), str(ref.slot), set(h.keys())

    def load_frames(self, index: int, frame_indices: np.ndarray | list[int] | None = None) -> np.ndarray:
        """(n, H, W, 3) uint8 frames of clip `index`; decodes only the requested frames."""
        ref = self.refs[index]
        h = self._handle(ref.shard)
        codec = self._header(ref.shard)[1]
        idx = np.arange(ref.num_frames) if frame_indices is None else np.asarray(frame_indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= ref.num_frames):
            raise IndexError(f"frame indices out of range for clip {ref.clip_id} ({ref.num_frames} frames)")
        p = str(ref.slot)
        if codec == "raw":
            frames = h.get_slice(f"{p}/frames")
            return np.stack([frames[int(i) : int(i) + 1][0] for i in idx]) if idx.size else np.zeros((0,), np.uint8)
        offsets = h.get_tensor(f"{p}/frame_offsets")
        data = h.get_slice(f"{p}/frame_bytes")
        out = [
            decode_frame(data[int(offsets[i]) : int(offsets[i + 1])], f"frame {i} of clip {ref.clip_id} in {ref.shard}")
            for i in idx
        ]
        return np.stack(out)

    def frame_timestamps_us(self, index: int) -> np.ndarray:
        get, p, _ = self._get(index)
        return get(f"{p}/frame_timestamps_us")

    def pose_stream(self, index: int) -> PoseStream | None:
        get, p, keys = self._get(index)
        return pose_stream_from(get, p, keys)

    def commands(self, index: int) -> np.ndarray | None:
        get, p, keys = self._get(index)
        return get(f"{p}/commands") if f"{p}/commands" in keys else None

    def load_clip(self, index: int) -> Clip:
        """The full clip, all frames decoded."""
        get, p, keys = self._get(index)
        return clip_from_parts(self.meta(index), self.load_frames(index), get, p, keys)
