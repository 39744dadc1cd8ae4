"""The store manifest: what a clip store holds, how it was made, and checksums of every shard.

Written atomically (temp file + rename) after every shard, so a killed conversion leaves a manifest
that describes exactly the shards that were completed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from data.schema import SCHEMA_VERSION

MANIFEST_NAME = "manifest.json"


@dataclass
class ShardRecord:
    file: str
    sha256: str
    bytes: int
    items: list[str]
    clip_ids: list[str]
    clip_num_frames: list[int]


@dataclass
class Manifest:
    """Mutable while a writer owns the store; readers treat it as read-only.

    items: every item key of the conversion that made the store, in conversion order (empty for a
    store written item by item with ClipStoreWriter); shards, skips and bad files are listed in
    that order, and the store is complete once each item has its shards or a final skip.
    """

    source: str
    config: dict[str, Any]
    codec: str
    schema_version: int = SCHEMA_VERSION
    code_version: str = ""
    shards: list[ShardRecord] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    complete: bool = False
    items: list[str] = field(default_factory=list)

    @property
    def num_clips(self) -> int:
        return sum(len(s.clip_ids) for s in self.shards)

    @property
    def num_frames(self) -> int:
        return sum(sum(s.clip_num_frames) for s in self.shards)

    @property
    def done_items(self) -> set[str]:
        done = {item for s in self.shards for item in s.items}
        return done | {s["item"] for s in self.skipped if not s.get("retry")}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["num_clips"] = self.num_clips
        d["num_frames"] = self.num_frames
        d["num_skipped"] = len(self.skipped)
        d["num_skipped_files"] = len(self.skipped_files)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Manifest":
        shards = [ShardRecord(**s) for s in d.get("shards", [])]
        return cls(
            source=d["source"],
            config=d.get("config", {}),
            codec=d["codec"],
            schema_version=int(d.get("schema_version", 0)),
            code_version=d.get("code_version", ""),
            shards=shards,
            skipped=list(d.get("skipped", [])),
            skipped_files=list(d.get("skipped_files", [])),
            complete=bool(d.get("complete", False)),
            items=list(d.get("items", [])),
        )

    def save(self, directory: Path, name: str = MANIFEST_NAME) -> None:
        """Write atomically to `directory`/`name` (a rank's journal has its own name)."""
        atomic_write_text(Path(directory) / name, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, directory: Path, name: str = MANIFEST_NAME) -> "Manifest":
        path = Path(directory) / name
        if not path.is_file():
            raise FileNotFoundError(f"no clip store at {directory}: {name} is missing")
        d = read_json(path, "manifest")
        if int(d.get("schema_version", 0)) != SCHEMA_VERSION:
            raise ValueError(
                f"{path}: schema version {d.get('schema_version')} but this code reads {SCHEMA_VERSION}; reconvert"
            )
        return cls.from_dict(d)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's 0600 would hide a shared dataset from the other users


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the complete new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path, what: str) -> Any:
    """The parsed JSON file `path`; a ValueError "corrupt <what> <path>: ..." when it does not parse."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"corrupt {what} {path}: {exc}") from exc


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
