"""Resumable, atomic writing of a token store: one (T, h, w) uint16 .npy file per clip (and a (T, 4)
float32 poses .npy file per clip with poses) plus the manifest.

A clip file (and its poses file) appears under its final name only once complete (temp file + rename), and the journal
(manifest.json, or manifest.part-<rank>.json under several ranks) lists it only after that. On
restart, clips already listed are skipped; leftover temp files and unlisted clip files of this rank
are removed, so nothing half-written is ever read as valid.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from data.ranks import PART_GLOB, part_name
from data.store.manifest import atomic_write_bytes
from world_model.tokens.manifest import (
    MANIFEST_NAME,
    ClipTokensRecord,
    TokenStoreManifest,
    clip_file_name,
    poses_file_name,
    warped_file_name,
)

log = logging.getLogger(__name__)
_CLIP_FILE = re.compile(r"^clip-(\d{6})(\.poses|\.warped)?\.npy$")
_TEMP_FILE = re.compile(r"^\.clip-(\d{6})(\.poses|\.warped)?\.npy\..*\.tmp$")


def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"foresight-drive {version('foresight-drive')}"
    except PackageNotFoundError:
        return "foresight-drive (not installed)"


def npy_bytes(tokens: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(tokens), allow_pickle=False)
    return buf.getvalue()


class TokenStoreWriter:
    """Writes the clips of `header` into `out_dir` for one rank of `world_size`; resumes earlier runs.

    header: the manifest without clips (tokenizer identity, source, grid, codebook size). Resuming
    with a different tokenizer identity, grid or source store is refused unless overwrite=True.
    Rank r handles the clips with clip_index % world_size == r.
    """

    def __init__(
        self, out_dir: str | Path, header: TokenStoreManifest, rank: int = 0, world_size: int = 1,
        overwrite: bool = False, save_every_s: float = 5.0,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.rank, self.world_size, self.save_every_s = rank, world_size, save_every_s
        self.header = replace(header, clips=[], complete=False, code_version=header.code_version or code_version())
        main = self.out_dir / MANIFEST_NAME
        if overwrite and rank == 0:
            self._clear()
        existing = [TokenStoreManifest.load(main)] if main.is_file() else []
        existing += [TokenStoreManifest.load(p) for p in sorted(self.out_dir.glob(PART_GLOB))]
        for m in existing:
            self._check_compatible(m)
        records: dict[int, ClipTokensRecord] = {}
        for m in existing:
            for rec in m.clips:
                if all((self.out_dir / name).is_file() and (self.out_dir / name).stat().st_size == size for name, _, size in rec.files()):
                    records[rec.clip_index] = rec
                else:
                    log.warning("token store %s: a listed file of %s is missing or truncated; it will be rewritten", self.out_dir, rec.file)
        self.done: dict[int, ClipTokensRecord] = records
        # This rank's journal starts with every clip known done, so merging is a union.
        self.own: dict[int, ClipTokensRecord] = {i: r for i, r in records.items() if self.owns(i)}
        self._remove_stale_files()
        self._last_save = 0.0

    def _clear(self) -> None:
        for p in list(self.out_dir.glob("clip-*.npy")) + list(self.out_dir.glob("manifest*.json")) + list(self.out_dir.glob(".clip-*.tmp")):
            p.unlink()

    def _check_compatible(self, m: TokenStoreManifest) -> None:
        h = self.header
        if m.tokenizer != h.tokenizer or m.grid_hw != h.grid_hw or m.codebook_size != h.codebook_size or m.source.get("path") != h.source.get("path"):
            raise ValueError(
                f"{self.out_dir} already holds tokens from another tokenizer, grid or source store "
                f"(tokenizer sha {m.tokenizer.get('weights_sha256', '?')[:12]} vs {h.tokenizer.get('weights_sha256', '?')[:12]}, "
                f"grid {m.grid_hw} vs {h.grid_hw}, source {m.source.get('path')} vs {h.source.get('path')}); "
                "pass overwrite=true or choose another output directory"
            )

    def owns(self, clip_index: int) -> bool:
        return clip_index % self.world_size == self.rank

    def _remove_stale_files(self) -> None:
        for p in self.out_dir.iterdir():
            m = _TEMP_FILE.match(p.name) or _CLIP_FILE.match(p.name)
            if m is None or not self.owns(int(m.group(1))):
                continue
            listed = {name for name, _, _ in self.done[int(m.group(1))].files()} if int(m.group(1)) in self.done else set()
            if _TEMP_FILE.match(p.name) or p.name not in listed:
                log.warning("token store %s: removing %s left by an interrupted run", self.out_dir, p.name)
                p.unlink()

    def is_done(self, clip_index: int) -> bool:
        return clip_index in self.done

    def write_clip(
        self, clip_index: int, clip_id: str, fps: float, tokens: np.ndarray, poses: np.ndarray | None = None,
        warped: np.ndarray | None = None,
    ) -> ClipTokensRecord:
        """Store (T, h, w) integer tokens of source clip `clip_index` as uint16 (and its (T, 4)
        [x m, y m, z m, yaw rad] ego poses as float32, when it has them, and its (T, h, w) warped
        previous-frame tokens as int32, -1 = unknown, when given), then journal it."""
        h, w = self.header.grid_hw
        if tokens.ndim != 3 or tokens.shape[1:] != (h, w):
            raise ValueError(f"clip {clip_id}: tokens must be (T, {h}, {w}), got {tokens.shape}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.header.codebook_size):
            raise ValueError(f"clip {clip_id}: token ids outside [0, {self.header.codebook_size})")
        if not self.owns(clip_index):
            raise ValueError(f"clip index {clip_index} belongs to rank {clip_index % self.world_size}, not {self.rank}")
        poses_fields: dict[str, object] = {}
        if poses is not None:
            if poses.shape != (tokens.shape[0], 4) or not np.isfinite(poses).all():
                raise ValueError(f"clip {clip_id}: poses must be finite ({tokens.shape[0]}, 4) [x, y, z, yaw], got {poses.shape}")
            poses_data = npy_bytes(poses.astype(np.float32))
            poses_name = poses_file_name(clip_index)
            atomic_write_bytes(self.out_dir / poses_name, poses_data)  # before the tokens: a listed clip has both
            poses_fields = {"poses_file": poses_name, "poses_sha256": hashlib.sha256(poses_data).hexdigest(), "poses_bytes": len(poses_data)}
        warped_fields: dict[str, object] = {}
        if warped is not None:
            if warped.shape != tokens.shape or (warped.size and (warped.min() < -1 or warped.max() >= self.header.codebook_size)):
                raise ValueError(f"clip {clip_id}: warped tokens must be {tokens.shape} in [-1, {self.header.codebook_size}), got {warped.shape}")
            warped_data = npy_bytes(warped.astype(np.int32))
            warped_name = warped_file_name(clip_index)
            atomic_write_bytes(self.out_dir / warped_name, warped_data)
            warped_fields = {"warped_file": warped_name, "warped_sha256": hashlib.sha256(warped_data).hexdigest(), "warped_bytes": len(warped_data)}
        data = npy_bytes(tokens.astype(np.uint16))
        name = clip_file_name(clip_index)
        atomic_write_bytes(self.out_dir / name, data)
        rec = ClipTokensRecord(
            clip_id, clip_index, int(tokens.shape[0]), float(fps), name, hashlib.sha256(data).hexdigest(), len(data), **poses_fields, **warped_fields  # type: ignore[arg-type]
        )
        self.done[clip_index] = rec
        self.own[clip_index] = rec
        if time.monotonic() - self._last_save >= self.save_every_s:
            self.save_journal()
        return rec

    def snapshot(self, records: dict[int, ClipTokensRecord], complete: bool) -> TokenStoreManifest:
        return replace(self.header, clips=[records[i] for i in sorted(records)], complete=complete)

    def save_journal(self) -> None:
        """Write this rank's journal (manifest.json when there is one rank)."""
        if self.world_size == 1:
            self.snapshot(self.own, False).save(self.out_dir / MANIFEST_NAME)
        else:
            self.snapshot(self.own, False).save(self.out_dir / part_name(self.rank))
        self._last_save = time.monotonic()

    def merge(self, num_source_clips: int) -> TokenStoreManifest:
        """Union manifest.json and every rank's journal into manifest.json (rank 0 calls this after all
        ranks saved their journals); complete when every source clip is listed. Removes merged journals."""
        records = dict(self.own)
        main = self.out_dir / MANIFEST_NAME
        parts = sorted(self.out_dir.glob(PART_GLOB))
        for p in ([main] if main.is_file() else []) + parts:
            m = TokenStoreManifest.load(p)
            self._check_compatible(m)
            records.update({r.clip_index: r for r in m.clips})
        manifest = self.snapshot(records, complete=len(records) == num_source_clips)
        manifest.save(main)
        for p in parts:
            p.unlink()
        return manifest
