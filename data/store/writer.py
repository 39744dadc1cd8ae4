"""Resumable, atomic writing of clip shards.

A conversion is a sequence of source *items* (a nuScenes scene, a nuPlan log, a video). All clips
of an item go into the same shard; the manifest lists an item as done only once its shard is
renamed into place, so a killed conversion restarts at the first unfinished item, and a
half-written shard only ever exists under a temporary name that no reader looks at.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from data.image import FRAME_CODECS
from data.schema import Clip
from data.store.manifest import MANIFEST_NAME, Manifest, ShardRecord, atomic_write_bytes
from data.store.shard_format import clip_to_tensors, encode_header, shard_bytes

log = logging.getLogger(__name__)


def _code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"foresight-drive {version('foresight-drive')}"
    except PackageNotFoundError:
        return "foresight-drive (not installed)"


def write_shard(path: Path, tensors: dict[str, np.ndarray], metas: list[dict[str, Any]], codec: str, items: list[str]) -> ShardRecord:
    """Write one shard atomically: `tensors` named "<slot>/<name>" for the clips whose metadata is
    `metas` (slot k = metas[k]), from source `items`; returns its manifest record."""
    data = shard_bytes(tensors, encode_header(metas, codec))
    atomic_write_bytes(path, data)
    return ShardRecord(
        file=path.name,
        sha256=hashlib.sha256(data).hexdigest(),  # of the bytes just written: no read-back of the shard
        bytes=len(data),
        items=list(items),
        clip_ids=[m["clip_id"] for m in metas],
        clip_num_frames=[m["num_frames"] for m in metas],
    )


class ClipStoreWriter:
    """Write clips into `out_dir`, resuming a previous run with the same config.

    config: the conversion settings (JSON-able); resuming with different settings is refused so one
    store never mixes two configurations.
    """

    def __init__(
        self,
        out_dir: str | Path,
        source: str,
        config: dict[str, Any],
        codec: str = "jpeg",
        jpeg_quality: int = 95,
        clips_per_shard: int = 8,
        overwrite: bool = False,
    ) -> None:
        if codec not in FRAME_CODECS:
            raise ValueError(f"unknown frame codec {codec!r}; expected one of {FRAME_CODECS}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.codec, self.jpeg_quality, self.clips_per_shard = codec, jpeg_quality, max(1, clips_per_shard)
        config = json.loads(json.dumps(config, default=str))
        for stale in self.out_dir.glob(".*.tmp"):
            stale.unlink()
        manifest_path = self.out_dir / MANIFEST_NAME
        if manifest_path.exists() and overwrite:
            for shard in self.out_dir.glob("shard-*.safetensors"):
                shard.unlink()
            manifest_path.unlink()
        if manifest_path.exists():
            self.manifest = Manifest.load(self.out_dir)
            if self.manifest.config != config or self.manifest.source != source or self.manifest.codec != codec:
                raise ValueError(
                    f"{self.out_dir} already holds a {self.manifest.source} store made with a different "
                    f"configuration; pass overwrite=true or choose another output directory"
                )
            self._drop_unlisted_shards()
            self.manifest.complete = False
        else:
            self.manifest = Manifest(source=source, config=config, codec=codec, code_version=_code_version())
        self._reset_pending()

    def _reset_pending(self) -> None:
        # Clips are encoded as they arrive (JPEG bytes, not raw frames, wait for the flush), so a long
        # video never holds more than its encoded frames in memory. Slot k of the next shard is the
        # k-th queued clip.
        self._pending_items: list[str] = []
        self._pending_tensors: dict[str, np.ndarray] = {}
        self._pending_metas: list[dict[str, Any]] = []
        self._pending_bad_files: list[dict[str, str]] = []

    def _drop_unlisted_shards(self) -> None:
        listed = {s.file for s in self.manifest.shards}
        for shard in self.out_dir.glob("shard-*.safetensors"):
            if shard.name not in listed:
                log.warning("removing shard %s that the manifest does not list (interrupted run)", shard)
                shard.unlink()

    def is_done(self, item: str) -> bool:
        """True if `item` was written, or skipped for good, by this or an earlier run."""
        return item in self.manifest.done_items or item in self._pending_items

    def add(self, item: str, clips: Iterable[Clip], bad_files: list[dict[str, str]] = ()) -> int:
        """Encode and queue all clips of one source item (a list or a generator); flushes a shard
        once enough clips are queued. Returns the number of clips added.

        bad_files: files of this item that were left out ({"item", "file", "reason"}); they are
        recorded together with the item's shard, so a resumed run never counts them twice.
        """
        first = len(self._pending_metas)
        try:
            for clip in clips:
                tensors, meta = clip_to_tensors(clip, str(len(self._pending_metas)), self.codec, self.jpeg_quality)
                self._pending_tensors.update(tensors)
                self._pending_metas.append(meta)
        except BaseException:
            # The item failed midway: its clips must not ride along in the next item's shard.
            stale = {str(k) for k in range(first, len(self._pending_metas))}
            self._pending_tensors = {k: v for k, v in self._pending_tensors.items() if k.split("/", 1)[0] not in stale}
            del self._pending_metas[first:]
            raise
        added = len(self._pending_metas) - first
        if not added:
            raise ValueError(f"item {item!r} produced no clips; call skip() with a reason instead")
        self._forget_skips(item)
        self._pending_items.append(item)
        self._pending_bad_files.extend(bad_files)
        if len(self._pending_metas) >= self.clips_per_shard:
            self.flush()
        return added

    def skip(self, item: str, reason: str, bad_files: list[dict[str, str]] = (), retry: bool = False) -> None:
        """Record that `item` could not be converted, and why.

        retry: the cause may go away (a file not downloaded yet): a later run tries the item again.
        """
        self._forget_skips(item)
        self.manifest.skipped.append({"item": item, "reason": reason, **({"retry": True} if retry else {})})
        self.manifest.skipped_files.extend(bad_files)
        self.manifest.save(self.out_dir)

    def _forget_skips(self, item: str) -> None:
        """Drop what an earlier run recorded as skipped for `item` (it is being converted again)."""
        self.manifest.skipped = [s for s in self.manifest.skipped if s["item"] != item]
        self.manifest.skipped_files = [f for f in self.manifest.skipped_files if f.get("item") != item]

    def flush(self) -> None:
        """Write queued clips as one shard, then the manifest (both atomically)."""
        if not self._pending_metas:
            return
        name = f"shard-{len(self.manifest.shards):05d}.safetensors"
        self.manifest.shards.append(
            write_shard(self.out_dir / name, self._pending_tensors, self._pending_metas, self.codec, self._pending_items)
        )
        self.manifest.skipped_files.extend(self._pending_bad_files)
        self.manifest.save(self.out_dir)
        self._reset_pending()

    def close(self) -> Manifest:
        """Flush and mark the store complete."""
        self.flush()
        self.manifest.complete = True
        self.manifest.save(self.out_dir)
        return self.manifest

    def __enter__(self) -> "ClipStoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            # Queued items are complete and worth keeping; the store stays marked incomplete.
            self.flush()
