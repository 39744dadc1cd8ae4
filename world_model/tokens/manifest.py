"""The token store manifest: which tokenizer made the tokens, from which clip store, and a checksum per clip file.

A clip whose source has ego poses also has a poses file: (T, 4) float32 [x m, y m, z m, yaw rad]
per stored frame in the clip's local frame (yaw unwrapped), the clip's pose stream interpolated at
the frame timestamps, so world-model training gets the ego's motion without the clip store.
Stores written before poses were kept (no poses fields) still load: their motions are unknown.
A clip with poses and a camera may also have a warped file (`data tokenize warp_prev=true`): (T, h, w)
int32 tokens of frame f - 1 warped on the ground plane by the ego's motion into frame f
(world_model/warp_tokens.py), -1 where unknown (frame 0): the input of a world model with
GPTConfig.prev_frame_warp, for windows at the store's own frame rate.

manifest.json is written atomically (temp file + rename) and lists a clip only after its .npy file
is complete, so a killed run leaves a manifest that describes exactly the finished clips. Under
several ranks each rank journals into manifest.part-<rank>.json and rank 0 merges them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from data.store.manifest import atomic_write_text, read_json

TOKEN_STORE_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
TOKEN_DTYPE = "uint16"


def clip_file_name(clip_index: int) -> str:
    return f"clip-{clip_index:06d}.npy"


def poses_file_name(clip_index: int) -> str:
    return f"clip-{clip_index:06d}.poses.npy"


def warped_file_name(clip_index: int) -> str:
    return f"clip-{clip_index:06d}.warped.npy"


@dataclass(frozen=True)
class ClipTokensRecord:
    """One clip's tokens: `file` holds (num_frames, h, w) uint16 in .npy format; clip_index is its
    index in the source clip store. poses_file (with its poses_sha256, poses_bytes): the clip's
    (num_frames, 4) float32 [x, y, z, yaw] ego poses in .npy format, or None (no poses). warped_file
    (with warped_sha256, warped_bytes): (num_frames, h, w) int32 warped previous-frame tokens, or None."""

    clip_id: str
    clip_index: int
    num_frames: int
    fps: float
    file: str
    sha256: str
    bytes: int
    poses_file: str | None = None
    poses_sha256: str | None = None
    poses_bytes: int | None = None
    warped_file: str | None = None
    warped_sha256: str | None = None
    warped_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.clip_index < 0 or self.num_frames < 0 or self.bytes <= 0 or len(self.sha256) != 64:
            raise ValueError(f"invalid token store record {self}")
        if self.poses_file is not None and (not self.poses_bytes or self.poses_bytes <= 0 or len(self.poses_sha256 or "") != 64):
            raise ValueError(f"invalid token store record {self}: a poses file needs its size and SHA-256")
        if self.warped_file is not None and (not self.warped_bytes or self.warped_bytes <= 0 or len(self.warped_sha256 or "") != 64):
            raise ValueError(f"invalid token store record {self}: a warped file needs its size and SHA-256")

    def files(self) -> list[tuple[str, str, int]]:
        """(file, sha256, bytes) of every file of this clip: the tokens, then the poses and warped tokens if any."""
        out = [(self.file, self.sha256, self.bytes)]
        if self.poses_file is not None:
            out.append((self.poses_file, str(self.poses_sha256), int(self.poses_bytes or 0)))
        if self.warped_file is not None:
            out.append((self.warped_file, str(self.warped_sha256), int(self.warped_bytes or 0)))
        return out


@dataclass
class TokenStoreManifest:
    """tokenizer: identity (architecture, config, weights_sha256) plus the encode precision;
    source: {path, manifest_sha256, num_clips} of the clip store; grid_hw: tokens per frame (h, w)."""

    tokenizer: dict[str, Any]
    source: dict[str, Any]
    grid_hw: tuple[int, int]
    codebook_size: int
    dtype: str = TOKEN_DTYPE
    schema_version: int = TOKEN_STORE_SCHEMA_VERSION
    code_version: str = ""
    clips: list[ClipTokensRecord] = field(default_factory=list)
    complete: bool = False

    def __post_init__(self) -> None:
        self.grid_hw = (int(self.grid_hw[0]), int(self.grid_hw[1]))
        if min(self.grid_hw) < 1 or not 2 <= self.codebook_size <= 65536 or self.dtype != TOKEN_DTYPE:
            raise ValueError(f"invalid token store header: grid {self.grid_hw}, codebook {self.codebook_size}, dtype {self.dtype}")

    @property
    def num_frames(self) -> int:
        return sum(c.num_frames for c in self.clips)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grid_hw"] = list(self.grid_hw)
        d["num_clips"] = len(self.clips)
        d["num_frames"] = self.num_frames
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> "TokenStoreManifest":
        if int(d.get("schema_version", -1)) != TOKEN_STORE_SCHEMA_VERSION:
            raise ValueError(f"{where}: token store schema version {d.get('schema_version')} but this code reads {TOKEN_STORE_SCHEMA_VERSION}")
        try:
            return cls(
                tokenizer=d["tokenizer"],
                source=d["source"],
                grid_hw=tuple(d["grid_hw"]),
                codebook_size=int(d["codebook_size"]),
                dtype=d.get("dtype", TOKEN_DTYPE),
                schema_version=int(d["schema_version"]),
                code_version=d.get("code_version", ""),
                clips=[ClipTokensRecord(**c) for c in d.get("clips", [])],
                complete=bool(d.get("complete", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: malformed token store manifest: {exc}") from exc

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> "TokenStoreManifest":
        if not path.is_file():
            raise FileNotFoundError(f"no token store manifest at {path}")
        return cls.from_dict(read_json(path, "token store manifest"), str(path))
