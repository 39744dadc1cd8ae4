"""A fixed-shape decode step for the video GPT, compilable once (torch.compile / CUDA graphs).

Token-by-token and speculative decoding through `KVCache` change tensor shapes at every call (the
cache grows, blocks shrink at the end of a frame), which defeats graph capture. `StaticDecoder`
owns a preallocated token buffer and `StaticKVCache` for a fixed batch B and runs every
verification call as exactly K = block + 1 tokens at consecutive positions: the last committed
token and `block` draft tokens, padded past the end of the frame into spare slots whose outputs are
ignored. The step is then one function of fixed shapes, which `torch.compile` turns into one graph
(with `mode="reduce-overhead"` on CUDA, replayed as a CUDA graph: the launch-bound decode of the
S model is what this is for). The window is prefilled eagerly, once per frame.

Greedy results equal those of `KVCache` decoding up to floating-point ties (the attention sums over
a padded, masked key set); tests compare the tokens.
"""

from __future__ import annotations

import torch

from world_model.gpt.kv_cache import StaticKVCache
from world_model.gpt.model import GPT

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


class StaticDecoder:
    """Fixed-shape verification steps of `model` for `batch` sequences and `block` draft tokens.

    sequence (B, n_slots) int64: the token buffer decoding writes into (the window, then the new
    frame); n_slots = the model's context + `block` spare slots for padding. dtype: of the cached
    keys/values (default: the model's parameters'; bfloat16 under bf16 autocast on a GPU).
    `compile_mode` is "none" (eager) or a torch.compile mode; the compiled step is built on first use.
    ego_motion (B, max_frames + 1, 3) float: the motions into the frames of `sequence` (NaN =
    unknown), a fixed buffer every step reads (`set_ego_motion` fills it); only for a model with
    ego_motion_input. warped_prev (B, n_slots) int64: the warped previous-frame tokens flattened like
    `sequence` (-1 = unknown; `set_warped_prev` fills it); only for a model with prev_frame_warp.
    """

    def __init__(self, model: GPT, batch: int, block: int, device: torch.device | str, dtype: torch.dtype | None = None, compile_mode: str = "none") -> None:
        if block < 1 or batch < 1:
            raise ValueError(f"StaticDecoder needs block >= 1 and batch >= 1, got block={block}, batch={batch}")
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"StaticDecoder: compile_mode must be one of {COMPILE_MODES}, got {compile_mode!r}")
        c = model.config
        self.model = model
        self.batch = batch
        self.block = block
        self.n_slots = c.max_tokens + block
        self.device = torch.device(device)
        self.sequence = torch.zeros(batch, self.n_slots, dtype=torch.int64, device=self.device)  # (B, n_slots)
        # One frame more than the context: padding slots past it read a motion too (their logits are ignored).
        self.ego_motion = (
            torch.full((batch, c.max_frames + 1, 3), float("nan"), device=self.device) if c.ego_motion_input else None
        )  # (B, max_frames + 1, 3)
        self.warped_prev = (
            torch.full((batch, self.n_slots), -1, dtype=torch.int64, device=self.device) if c.prev_frame_warp else None
        )  # (B, n_slots)
        dtype = dtype if dtype is not None else next(model.parameters()).dtype
        self.cache = StaticKVCache(c.n_layer, batch, c.n_head, self.n_slots, c.head_dim, dtype, self.device)
        self._offsets = torch.arange(block + 1, device=self.device)  # (K,)
        self.compile_mode = compile_mode
        self._step = model.forward_positions
        if compile_mode != "none":
            self._step = torch.compile(model.forward_positions, mode=None if compile_mode == "default" else compile_mode, fullgraph=True, dynamic=False)

    def set_ego_motion(self, ego_motion: torch.Tensor | None) -> None:
        """Motions (B, T', 3), T' <= max_frames + 1, into the frames of the sequence from frame 0; the
        rest (and everything, for None) is unknown. A model without ego_motion_input ignores them."""
        if self.ego_motion is None:
            return
        self.ego_motion.fill_(float("nan"))
        if ego_motion is not None:
            if ego_motion.ndim != 3 or ego_motion.shape[0] != self.batch or ego_motion.shape[2] != 3 or ego_motion.shape[1] > self.ego_motion.shape[1]:
                raise ValueError(f"StaticDecoder.set_ego_motion: need (B={self.batch}, T <= {self.ego_motion.shape[1]}, 3), got {tuple(ego_motion.shape)}")
            self.ego_motion[:, : ego_motion.shape[1]] = ego_motion

    def set_warped_prev(self, warped_prev: torch.Tensor | None) -> None:
        """Warped previous-frame tokens (B, T', h, w), T' <= max_frames, of the frames of the sequence from
        frame 0, -1 = unknown; the rest (and everything, for None) is unknown. Ignored without prev_frame_warp."""
        if self.warped_prev is None:
            return
        self.warped_prev.fill_(-1)
        if warped_prev is not None:
            c = self.model.config
            if warped_prev.ndim != 4 or warped_prev.shape[0] != self.batch or warped_prev.shape[1] > c.max_frames or tuple(warped_prev.shape[2:]) != (c.tokens_h, c.tokens_w):
                raise ValueError(f"StaticDecoder.set_warped_prev: need (B={self.batch}, T <= {c.max_frames}, {c.tokens_h}, {c.tokens_w}), got {tuple(warped_prev.shape)}")
            flat = warped_prev.reshape(self.batch, -1)
            self.warped_prev[:, : flat.shape[1]] = flat

    def prefill(self, n_tokens: int) -> None:
        """Write the keys/values of sequence[:, :n_tokens] (eager: its length changes with the window)."""
        if not 0 < n_tokens <= self.model.config.max_tokens:
            raise ValueError(f"StaticDecoder.prefill: n_tokens must be in [1, {self.model.config.max_tokens}], got {n_tokens}")
        self.model.forward_positions(self.sequence, torch.arange(n_tokens, device=self.device), self.cache, self.ego_motion, self.warped_prev)

    def verify(self, first: int) -> torch.Tensor:
        """Logits (B, block + 1, V) of the tokens at positions first .. first + block (fixed shape).

        logits[:, j] scores the token at position first + j + 1. Positions past the context are
        padding (spare slots); their logits mean nothing.
        """
        if not 0 <= first < self.model.config.max_tokens:
            raise ValueError(f"StaticDecoder.verify: first must be in [0, {self.model.config.max_tokens}), got {first}")
        positions = self._offsets + first  # (K,)
        return self._step(self.sequence, positions, self.cache, self.ego_motion, self.warped_prev)
