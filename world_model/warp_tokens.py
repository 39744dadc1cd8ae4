"""Warped previous-frame tokens: the input of a world model with GPTConfig.prev_frame_warp.

For frame f >= 1 of a clip, the tokens of frame f - 1 warped on the ground plane by the ego's motion
into frame f (world_model/warp.py), then encoded by the world model's tokenizer. Copying them is the
model's default prediction, so it only learns what the flat-ground warp gets wrong (moving cars,
everything above the road). -1 marks an unknown entry: frame 0, a missing motion, a clip without a
camera; the model then uses the raw previous frame's token.

`warped_frame_tokens` makes them from a clip's raw frames (data tokenize, evaluation contexts);
`GroundTokenWarper` from tokens (decode, warp, encode: the frames a rollout generates), and
`window_warped_tokens` with it for a window known only as tokens (the planner's observed frames).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from data.schema import CameraExtrinsics, CameraIntrinsics
from world_model.tokenizer.encoding import ImageTokenizer
from world_model.tokenizer.pixels import frames_to_images, images_to_frames
from world_model.warp import warp_frames

if TYPE_CHECKING:
    from data.store.reader import ClipStore
    from world_model.gpt.generate import TokenWarper

Camera = tuple[CameraIntrinsics, CameraExtrinsics]


def clip_camera(store: "ClipStore", clip_index: int) -> Camera | None:
    """A clip's (intrinsics, extrinsics) from its metadata, or None when either is unknown."""
    meta = store.meta(clip_index)
    intr, extr = meta.get("intrinsics"), meta.get("extrinsics")
    return (CameraIntrinsics(**intr), CameraExtrinsics.from_dict(extr)) if intr is not None and extr is not None else None


def _encode(tokenizer: ImageTokenizer, frames: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, h, w) int64 tokens, on the tokenizer's device, in batches."""
    device = next(tokenizer.parameters()).device if isinstance(tokenizer, torch.nn.Module) else torch.device("cpu")
    out = []
    for i in range(0, len(frames), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(frames[i : i + batch_size])).to(device)
        out.append(tokenizer.encode(frames_to_images(chunk)).indices)
    return torch.cat(out)


@torch.no_grad()
def warped_frame_tokens(tokenizer: ImageTokenizer, frames: np.ndarray, motions: np.ndarray, camera: Camera | None) -> np.ndarray:
    """(T, h, w) int64 warped previous-frame tokens of a clip's frames (T, H, W, 3) uint8 with motions
    (T, 3) [dx_forward_m, dy_left_m, dyaw_rad] into each frame (row 0 unused; NaN = unknown), -1 where
    unknown (frame 0, NaN motions, or everywhere without a camera)."""
    frames, motions = np.asarray(frames), np.asarray(motions, dtype=np.float64)
    if frames.ndim != 4 or frames.dtype != np.uint8 or motions.shape != (len(frames), 3):
        raise ValueError(f"warped_frame_tokens: need frames (T, H, W, 3) uint8 and motions (T, 3), got {frames.shape} {frames.dtype}, {motions.shape}")
    factor = int(tokenizer.downsample_factor)
    out = np.full((len(frames), frames.shape[1] // factor, frames.shape[2] // factor), -1, dtype=np.int64)
    known = np.flatnonzero(np.isfinite(motions).all(axis=1) & (np.arange(len(frames)) >= 1))
    if camera is None or len(known) == 0:
        return out
    warped = warp_frames(frames[known - 1], camera[0], camera[1], motions[known]).frames  # (K, H, W, 3) uint8
    out[known] = _encode(tokenizer, warped).cpu().numpy()
    return out


@torch.no_grad()
def window_warped_tokens(tokens: torch.Tensor, motions: torch.Tensor, warper: "TokenWarper") -> torch.Tensor:
    """(B, T, h, w) int64 warped previous-frame tokens of a token window (B, T, h, w): frame f >= 1 from
    frame f - 1 and motions[:, f] (motions (B, >= T, 3) into each frame, NaN = unknown) through `warper`;
    -1 for frame 0 and wherever the warper says nothing."""
    if tokens.ndim != 4 or motions.ndim != 3 or motions.shape[0] != tokens.shape[0] or motions.shape[1] < tokens.shape[1]:
        raise ValueError(f"window_warped_tokens: need tokens (B, T, h, w) and motions (B, >= T, 3), got {tuple(tokens.shape)}, {tuple(motions.shape)}")
    out = torch.full_like(tokens, -1)
    for f in range(1, tokens.shape[1]):
        out[:, f] = warper(tokens[:, f - 1], motions[:, f])
    return out


class GroundTokenWarper:
    """A rollout's `TokenWarper` (world_model/gpt/generate.py) for a batch of windows: (B, h, w) tokens
    of a frame and (B, 3) motions into the next -> decode, warp on the ground plane with each row's
    camera, encode -> (B, h, w) int64, -1 for rows without a camera or with an unknown motion."""

    def __init__(self, tokenizer: ImageTokenizer, cameras: Sequence[Camera | None]) -> None:
        self.tokenizer = tokenizer
        self.cameras = list(cameras)

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3 or motion.shape != (tokens.shape[0], 3) or len(self.cameras) != tokens.shape[0]:
            raise ValueError(f"GroundTokenWarper: need tokens (B, h, w), motions (B, 3) and B = {len(self.cameras)} cameras, got {tuple(tokens.shape)}, {tuple(motion.shape)}")
        out = torch.full_like(tokens, -1)
        motions = motion.detach().double().cpu().numpy()
        rows = [j for j, cam in enumerate(self.cameras) if cam is not None and np.isfinite(motions[j]).all()]
        if not rows:
            return out
        index = torch.tensor(rows, device=tokens.device)
        frames = images_to_frames(self.tokenizer.decode_indices(tokens[index]).float()).cpu().numpy()  # (K, H, W, 3) uint8
        warped = np.stack([warp_frames(frames[k : k + 1], *self.cameras[j], motions[j : j + 1]).frames[0] for k, j in enumerate(rows)])  # type: ignore[misc]
        out[index] = _encode(self.tokenizer, warped).to(tokens.device)
        return out
