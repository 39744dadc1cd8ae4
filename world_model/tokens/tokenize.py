"""`run_tokenize(cfg)`: encode every clip of a clip store into a token store, resumably.

Frames are read in chunks of `batch_size` by DataLoader workers and encoded on the chosen device
(bf16 autocast on CUDA by default; the quantiser always runs in fp32). Launched with torchrun,
rank r of WORLD_SIZE encodes clips with clip_index % WORLD_SIZE == r on cuda:LOCAL_RANK, and
rank 0 merges the ranks' journals into manifest.json at the end. Each clip with poses also gets its
ego pose at every frame (`frame_poses`), for ego-motion-conditioned world-model training, and with
`warp_prev` (and a camera) its warped previous-frame tokens (world_model/warp_tokens.py).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from configs import build, defaults
from data.convert import progress_bar
from data.ranks import DistEnv, process_group
from data.settings import check_bool, check_int
from data.store.manifest import MANIFEST_NAME as CLIP_MANIFEST_NAME
from data.store.manifest import sha256_file
from data.store.reader import ClipStore
from world_model.gpt.ego_motion import frame_motions
from world_model.tokenizer.export import load_image_tokenizer
from world_model.tokenizer.pixels import frames_to_images
from world_model.tokens.manifest import TokenStoreManifest
from world_model.tokens.writer import TokenStoreWriter
from world_model.warp_tokens import Camera, clip_camera, warped_frame_tokens

log = logging.getLogger(__name__)
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TokenizeConfig:
    """The `data tokenize` settings (configs/data/tokenize.yaml holds the defaults).

    clips: clip store dir; tokenizer: exported tokenizer (.safetensors/.json/dir) or a LlamaGen .pt;
    out: token store dir. device: auto (cuda:LOCAL_RANK when CUDA is present, else cpu) or a torch
    device string. precision: auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16 (part of the store's identity).
    warp_prev: also store the warped previous-frame tokens of every clip with poses and a camera."""

    clips: str
    tokenizer: str
    out: str
    batch_size: int
    device: str
    precision: str
    num_workers: int
    overwrite: bool
    warp_prev: bool

    def __post_init__(self) -> None:
        if not self.clips or not self.tokenizer or not self.out:
            raise ValueError("tokenize: `clips`, `tokenizer` and `out` are required")
        check_int("batch_size", self.batch_size, 1)
        check_int("num_workers", self.num_workers, 0)
        check_bool("overwrite", self.overwrite)
        check_bool("warp_prev", self.warp_prev)
        if self.precision not in PRECISIONS:
            raise ValueError(f"tokenize: precision must be one of {PRECISIONS}, got {self.precision!r}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> "TokenizeConfig":
        """Every key of configs/data/tokenize.yaml, as composed (unknown and missing keys are errors)."""
        return build(cls, cfg, "tokenize")

    @classmethod
    def default(cls, clips: str | Path, tokenizer: str | Path, out: str | Path, **changes: Any) -> "TokenizeConfig":
        """configs/data/tokenize.yaml for these stores, with `changes` (field=value) applied."""
        paths = {"clips": str(clips), "tokenizer": str(tokenizer), "out": str(out)}
        return cls.from_mapping({**defaults("data/tokenize"), **paths, **changes})


def resolve_device(device: str, env: DistEnv) -> torch.device:
    if device == "auto":
        return torch.device(f"cuda:{env.local_rank % torch.cuda.device_count()}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(device)


class ClipChunks(Dataset):
    """Item k -> (clip_index, first_frame, (n, H, W, 3) uint8 frames): the listed clips cut into
    chunks of at most `chunk` frames, in order, so no worker ever holds a whole long clip."""

    def __init__(self, store: ClipStore, clip_indices: list[int], chunk: int) -> None:
        self.store = store
        self.items = [(ci, s) for ci in clip_indices for s in range(0, store.refs[ci].num_frames, chunk)]
        self.chunk = chunk

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[int, int, torch.Tensor]:
        ci, start = self.items[k]
        stop = min(start + self.chunk, self.store.refs[ci].num_frames)
        return ci, start, torch.from_numpy(self.store.load_frames(ci, np.arange(start, stop)))


def _grid(store: ClipStore, factor: int) -> tuple[int, int]:
    sizes = {(int(store.meta(i)["height"]), int(store.meta(i)["width"])) for i in range(len(store))}
    if len(sizes) != 1:
        raise ValueError(f"clip store {store.root} mixes frame sizes {sorted(sizes)}; a token store needs one size")
    (h, w), = sizes
    if h % factor or w % factor:
        raise ValueError(f"frames of {store.root} are {h}x{w}, not a multiple of the tokenizer's downsampling factor {factor}")
    return h // factor, w // factor


def frame_poses(store: ClipStore, clip_index: int) -> np.ndarray | None:
    """(T, 4) float32 [x m, y m, z m, yaw rad] ego pose at every frame of a clip (its pose stream
    interpolated at the frame timestamps), or None when the clip has no poses."""
    poses = store.pose_stream(clip_index)
    if poses is None:
        return None
    return poses.pose_at(store.frame_timestamps_us(clip_index)).astype(np.float32)


def warp_inputs(store: ClipStore, clip_index: int) -> tuple[np.ndarray, Camera] | None:
    """(T, 3) motions into every frame [dx_forward_m, dy_left_m, dyaw_rad] (row 0 NaN) and the camera
    (intrinsics, extrinsics) of a clip, or None when it lacks poses or a camera (no warp)."""
    poses, camera = frame_poses(store, clip_index), clip_camera(store, clip_index)
    if poses is None or camera is None:
        return None
    return frame_motions(poses[:, [0, 1, 3]].astype(np.float64)), camera


def run_tokenize(cfg: TokenizeConfig | Mapping[str, Any]) -> TokenStoreManifest:
    """Tokenize `cfg.clips` into `cfg.out`; returns this rank's view of the manifest (rank 0: the merged one).
    cfg: the settings, or the composed configs/data/tokenize.yaml (every key)."""
    c = cfg if isinstance(cfg, TokenizeConfig) else TokenizeConfig.from_mapping(cfg)
    env = DistEnv.from_environ()
    with process_group(env) as synced:
        return _tokenize(c, env, synced)


def _tokenize(c: TokenizeConfig, env: DistEnv, synced: bool) -> TokenStoreManifest:
    device = resolve_device(c.device, env)
    precision = c.precision if c.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    loaded = load_image_tokenizer(c.tokenizer)
    model = loaded.model
    model.to(device).eval()  # type: ignore[attr-defined]
    store = ClipStore(c.clips)
    if len(store) == 0:
        raise ValueError(f"clip store {c.clips} holds no clips")
    grid = _grid(store, model.downsample_factor)
    header = TokenStoreManifest(
        tokenizer={**loaded.identity, "precision": precision},
        source={"path": str(Path(c.clips).resolve()), "manifest_sha256": sha256_file(Path(c.clips) / CLIP_MANIFEST_NAME),
                "num_clips": len(store)},
        grid_hw=grid,
        codebook_size=model.codebook_size,
    )
    # Rank 0 clears (overwrite) and cleans up first; the others then read a settled directory.
    writer = TokenStoreWriter(c.out, header, env.rank, env.world_size, c.overwrite) if env.rank == 0 else None
    if synced:
        dist.barrier()
    writer = writer or TokenStoreWriter(c.out, header, env.rank, env.world_size, False)
    for ci, rec in writer.done.items():
        if ci >= len(store) or store.refs[ci].clip_id != rec.clip_id:
            raise ValueError(f"{c.out}: listed clip {rec.clip_id} (index {ci}) is not in {c.clips} any more; the source store changed, pass overwrite=true")
    pending = [ci for ci in range(len(store)) if writer.owns(ci) and not writer.is_done(ci)]
    chunks = ClipChunks(store, pending, c.batch_size)
    loader = DataLoader(chunks, batch_size=None, shuffle=False, num_workers=c.num_workers, pin_memory=device.type == "cuda")
    buffers: dict[int, np.ndarray] = {}
    warped_buffers: dict[int, np.ndarray] = {}  # clip -> (T, h, w) int64 warped previous-frame tokens
    warp_of: dict[int, tuple[np.ndarray, Camera] | None] = {}
    last_frame: dict[int, np.ndarray] = {}  # clip -> (1, H, W, 3) the previous chunk's last frame
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    )
    total = sum(store.refs[ci].num_frames for ci in pending)
    with progress_bar() as progress, torch.inference_mode():
        task = progress.add_task(f"tokenize rank {env.rank}/{env.world_size}", total=total, visible=env.rank == 0)
        for ci, start, frames in loader:
            ci, start = int(ci), int(start)
            n_frames = store.refs[ci].num_frames
            buf = buffers.setdefault(ci, np.zeros((n_frames, *grid), np.uint16))
            with autocast:
                indices = model.encode(frames_to_images(frames.to(device, non_blocking=True))).indices
            buf[start : start + len(frames)] = indices.cpu().numpy().astype(np.uint16)
            if c.warp_prev:
                if ci not in warp_of:
                    warp_of[ci] = warp_inputs(store, ci)
                if warp_of[ci] is not None:
                    motions, camera = warp_of[ci]  # type: ignore[misc]
                    # The chunk's frames after the frame before them (the previous chunk's last; none for frame 0).
                    pairs = np.concatenate([last_frame.get(ci, np.zeros_like(frames[:1].numpy())), frames.numpy()])
                    pair_motions = np.concatenate([np.full((1, 3), np.nan), motions[start : start + len(frames)]])
                    if start == 0:
                        pair_motions[1] = np.nan
                    with autocast:
                        warped = warped_frame_tokens(model, pairs, pair_motions, camera)[1:]  # type: ignore[arg-type]
                    warped_buffers.setdefault(ci, np.full((n_frames, *grid), -1, np.int64))[start : start + len(frames)] = warped
                    last_frame[ci] = frames[-1:].numpy()
            if start + len(frames) == n_frames:
                meta = store.meta(ci)
                last_frame.pop(ci, None)
                writer.write_clip(ci, store.refs[ci].clip_id, float(meta["fps"]), buffers.pop(ci), frame_poses(store, ci), warped_buffers.pop(ci, None))
            progress.advance(task, len(frames))
    for ci in pending:  # clips without frames never reach the loader
        if store.refs[ci].num_frames == 0:
            writer.write_clip(ci, store.refs[ci].clip_id, float(store.meta(ci)["fps"]), np.zeros((0, *grid), np.uint16))
    writer.save_journal()
    if synced:
        dist.barrier()
    if env.rank != 0:
        return writer.snapshot(writer.own, complete=False)
    manifest = writer.merge(len(store))
    print(
        f"tokens: {len(manifest.clips)}/{len(store)} clips, {manifest.num_frames} frames of {grid[0]}x{grid[1]} tokens "
        f"in {c.out} ({'complete' if manifest.complete else 'incomplete: rerun to resume'})"
    )
    return manifest
