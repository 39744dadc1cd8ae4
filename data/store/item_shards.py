"""The shards of one source item, named after the item: how a conversion writes a store in parallel.

A conversion (`foresight data <source>`) writes the clips of each item into shards of their own,
`shard-<digest of the item key>-<part>.safetensors`, at most `clips_per_shard` clips each. Neither
the names nor the bytes depend on which process, worker or machine converted the item, or when, so
any number of workers and ranks write the same files, and a journal only has to list them.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from data.schema import Clip
from data.store.manifest import ShardRecord
from data.store.shard_format import clip_to_tensors
from data.store.writer import write_shard

ITEM_SHARD = re.compile(r"^\.?shard-([0-9a-f]{16})-(\d{4})\.safetensors(\..*\.tmp)?$")


def item_digest(key: str) -> str:
    """16 hex digits of the SHA-256 of an item key: the item's part of its shard names."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def item_shard_name(key: str, part: int) -> str:
    return f"shard-{item_digest(key)}-{part:04d}.safetensors"


def shard_digest(file_name: str) -> str | None:
    """The item digest of an item shard or of its temporary file; None for any other file."""
    m = ITEM_SHARD.match(file_name)
    return None if m is None else m.group(1)


def write_item_shards(
    out_dir: Path, key: str, clips: Iterable[Clip], codec: str, jpeg_quality: int, clips_per_shard: int
) -> list[ShardRecord]:
    """Encode the clips of item `key` (a list or a generator) into its shards in `out_dir`; each
    shard is written once `clips_per_shard` clips are encoded, so a long video holds at most one
    shard of encoded frames in memory. If `clips` raises, the shards already written are removed."""
    records: list[ShardRecord] = []
    tensors: dict[str, np.ndarray] = {}
    metas: list[dict] = []

    def flush() -> None:
        records.append(write_shard(out_dir / item_shard_name(key, len(records)), tensors, metas, codec, [key]))
        tensors.clear()
        metas.clear()

    try:
        for clip in clips:
            t, meta = clip_to_tensors(clip, str(len(metas)), codec, jpeg_quality)
            tensors.update(t)
            metas.append(meta)
            if len(metas) >= clips_per_shard:
                flush()
        if metas:
            flush()
    except BaseException:
        for r in records:
            (out_dir / r.file).unlink(missing_ok=True)
        raise
    return records
