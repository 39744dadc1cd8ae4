"""`foresight data merge out=DIR`: the last step of a conversion whose ranks ran as separate jobs.

Under torchrun the ranks of `foresight data <source>` meet at a barrier and rank 0 writes the
store's manifest.json. Ranks launched independently (a SLURM array, jobs on several machines that
share a filesystem) each leave their journal `manifest.part-<rank>.json`; this command merges them
into manifest.json, once every rank has finished. It can be run again at any time (after rerunning
a rank that failed, say): merging is a union of what every journal lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configs import build
from data.errors import DataError, NothingConvertedError
from data.settings import check_bool
from data.store.journal import merge_store
from data.store.manifest import Manifest
from data.store.reader import ClipStore

MAX_LISTED_ITEMS = 10


@dataclass(frozen=True)
class MergeConfig:
    """out: the store directory the ranks converted into; verify: also check every shard's SHA-256."""

    out: str
    verify: bool

    def __post_init__(self) -> None:
        if not isinstance(self.out, str) or not self.out:
            raise ValueError(f"out must be a directory path, got {self.out!r}")
        check_bool("verify", self.verify)


def run(cfg: Any) -> Manifest:
    """Merge the journals in `cfg.out` into manifest.json; DataError when items are still unfinished."""
    c = build(MergeConfig, cfg, "data merge")
    manifest = merge_store(Path(c.out))
    if c.verify:
        ClipStore(c.out, verify=True)
    tried = {item for s in manifest.shards for item in s.items} | {s["item"] for s in manifest.skipped}
    todo = [key for key in manifest.items if key not in tried]  # no rank has got to them yet
    print(
        f"{manifest.source}: merged {len(manifest.items) - len(todo)} of {len(manifest.items)} items into {c.out}/manifest.json: "
        f"{manifest.num_clips} clips, {manifest.num_frames} frames; skipped {len(manifest.skipped)} items and "
        f"{len(manifest.skipped_files)} files"
    )
    if todo:
        shown = ", ".join(todo[:MAX_LISTED_ITEMS]) + (" ..." if len(todo) > MAX_LISTED_ITEMS else "")
        raise DataError(
            f"{len(todo)} items of {c.out} are not converted yet ({shown}): rerun the ranks that did not finish "
            "(the same command with the same rank and world size converts only what is missing), then merge again"
        )
    if manifest.num_clips == 0:
        manifest.complete = False
        manifest.save(Path(c.out))
        raise NothingConvertedError(f"nothing converted into {c.out}: all {len(manifest.skipped)} items were skipped", manifest.skipped)
    return manifest
