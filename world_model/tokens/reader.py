"""Random access to a token store: memory-mapped (T, h, w) uint16 tokens per clip, and its ego poses."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from data.errors import CorruptFileError
from world_model.tokens.manifest import MANIFEST_NAME, TokenStoreManifest


class TokenStore:
    """Read-only view of a token store directory; clip i is the i-th listed clip in source order.

    Cheap to pickle (arrays are opened per call), so it can be handed to DataLoader workers.
    """

    def __init__(self, root: str | Path, verify: bool = False) -> None:
        self.root = Path(root)
        self.manifest = TokenStoreManifest.load(self.root / MANIFEST_NAME)
        self.records = sorted(self.manifest.clips, key=lambda r: r.clip_index)
        if verify:
            self.verify()

    def __len__(self) -> int:
        return len(self.records)

    @property
    def grid_hw(self) -> tuple[int, int]:
        return self.manifest.grid_hw

    @property
    def codebook_size(self) -> int:
        return self.manifest.codebook_size

    @property
    def tokenizer(self) -> dict[str, Any]:
        """Identity of the tokenizer that made the tokens (architecture, config, weights_sha256, precision)."""
        return self.manifest.tokenizer

    @property
    def num_frames(self) -> int:
        return self.manifest.num_frames

    def meta(self, index: int) -> dict[str, Any]:
        """clip_id, clip_index (in the source clip store), num_frames, fps, file, sha256, bytes, has_poses."""
        r = self.records[index]
        return {"clip_id": r.clip_id, "clip_index": r.clip_index, "num_frames": r.num_frames, "fps": r.fps,
                "file": r.file, "sha256": r.sha256, "bytes": r.bytes, "has_poses": r.poses_file is not None,
                "has_warped": r.warped_file is not None}

    def _load(self, name: str, what: str, dtype: type, shape: tuple[int, ...], mmap: bool = False) -> np.ndarray:
        """A listed .npy file of the store, checked against the dtype and shape the manifest implies."""
        path = self.root / name
        if not path.is_file():
            raise CorruptFileError(f"{what} file listed in the manifest is missing: {path}")
        try:
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise CorruptFileError(f"cannot read {what} file {path}: {exc}") from exc
        if array.dtype != dtype or array.shape != shape:
            raise CorruptFileError(f"{what} file {path} holds {array.dtype} {array.shape}, expected {np.dtype(dtype).name} {shape}")
        return array

    def clip_tokens(self, index: int) -> np.ndarray:
        """(T, h, w) uint16 read-only memory map of clip `index`'s tokens."""
        r = self.records[index]
        return self._load(r.file, "token", np.uint16, (r.num_frames, *self.grid_hw), mmap=True)

    def clip_poses(self, index: int) -> np.ndarray | None:
        """(T, 4) float32 [x m, y m, z m, yaw rad] ego pose of every stored frame of clip `index` in
        the clip's local frame, or None when the clip has no poses (or the store predates them)."""
        r = self.records[index]
        return None if r.poses_file is None else self._load(r.poses_file, "poses", np.float32, (r.num_frames, 4))

    def clip_warped(self, index: int) -> np.ndarray | None:
        """(T, h, w) int32 warped previous-frame tokens of clip `index` (-1 = unknown; world_model/warp_tokens.py),
        or None when the store has none for it (made without warp_prev, or the clip lacks poses or a camera)."""
        r = self.records[index]
        return None if r.warped_file is None else self._load(r.warped_file, "warped tokens", np.int32, (r.num_frames, *self.grid_hw))

    def verify(self) -> None:
        """Check every listed file's size and SHA-256 against the manifest (CorruptFileError names the file)."""
        for r in self.records:
            for name, sha256, size in r.files():
                path = self.root / name
                if not path.is_file():
                    raise CorruptFileError(f"token store file listed in the manifest is missing: {path}")
                data = path.read_bytes()
                if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
                    raise CorruptFileError(f"token store file {path} does not match its manifest checksum")
