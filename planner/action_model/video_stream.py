"""The world model as the action expert's video stream, and the per-layer video keys/values it yields.

Video tokens never attend to action tokens, so with a frozen world model the video half of every
joint-attention layer is exactly the world model's own causal forward pass. Its per-layer keys and
values are therefore computed once per observation (`VideoStreamGPT.video_context`) and reused by
every flow step, which then runs only the few action tokens.

`VideoStreamGPT` is a `GPT` (same parameters, same state-dict keys, usable by
`world_model.gpt.generate.rollout`) with two public additions the action model needs: the keys and
values of every layer, and the input embeddings (for the reference joint forward pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange

from world_model.gpt.config import GPTConfig
from world_model.gpt.kv_cache import KVCache
from world_model.gpt.model import GPT


@dataclass(frozen=True)
class VideoContext:
    """Keys and values of every world-model layer for a window of video tokens.

    keys, values: one (B, nh, L, hd) tensor per layer, L = n_frames * tokens_per_frame tokens in
    (t, h, w) order; frame 0 is the window's oldest frame.
    """

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    n_frames: int
    tokens_per_frame: int

    def __post_init__(self) -> None:
        if len(self.keys) != len(self.values) or not self.keys:
            raise ValueError(f"VideoContext: need one key and one value tensor per layer, got {len(self.keys)} and {len(self.values)}")
        expected_len = self.n_frames * self.tokens_per_frame
        shape = tuple(self.keys[0].shape)
        for k, v in zip(self.keys, self.values):
            if tuple(k.shape) != shape or tuple(v.shape) != shape or k.ndim != 4 or shape[2] != expected_len:
                raise ValueError(
                    f"VideoContext: every key/value must be (B, nh, {expected_len}, hd) for {self.n_frames} frames of "
                    f"{self.tokens_per_frame} tokens; got keys {tuple(k.shape)}, values {tuple(v.shape)}"
                )

    @property
    def batch_size(self) -> int:
        return int(self.keys[0].shape[0])

    @property
    def n_layer(self) -> int:
        return len(self.keys)

    def first_frames(self, n_frames: int) -> "VideoContext":
        """The context of frames 0..n_frames-1 only (causality makes these keys/values unchanged)."""
        if not 1 <= n_frames <= self.n_frames:
            raise ValueError(f"VideoContext.first_frames: n_frames must be in [1, {self.n_frames}], got {n_frames}")
        end = n_frames * self.tokens_per_frame
        return VideoContext(
            keys=tuple(k[:, :, :end] for k in self.keys),
            values=tuple(v[:, :, :end] for v in self.values),
            n_frames=n_frames,
            tokens_per_frame=self.tokens_per_frame,
        )


class _LayerKVRecorder(KVCache):
    """A KVCache for one full forward pass that keeps each layer's keys/values as computed.

    Unlike the base cache it does not copy into preallocated storage, so gradients flow through the
    recorded tensors when the world model is trained.
    """

    def __init__(self, n_layer: int, max_len: int) -> None:
        super().__init__(n_layer, max_len)
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    def update(self, layer: int, k_new: torch.Tensor, v_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.length:
            raise ValueError("_LayerKVRecorder records a single forward pass from position 0")
        self.keys[layer], self.values[layer] = k_new, v_new
        return k_new, v_new


class VideoStreamGPT(GPT):
    """A GPT that also exposes its per-layer keys/values and input embeddings (see module docstring)."""

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Input embeddings (B, L, C) of a window tokens (B, T, h, w) starting at frame 0 (after dropout)."""
        self._check_window(tokens)
        return self.drop(self._embed(rearrange(tokens, "b t h w -> b (t h w)"), 0))

    def video_context(self, tokens: torch.Tensor) -> VideoContext:
        """Per-layer keys/values of a window tokens (B, T, h, w), T <= max_frames, from one causal pass."""
        self._check_window(tokens)
        c = self.config
        recorder = _LayerKVRecorder(c.n_layer, c.max_tokens)
        self.forward_flat(rearrange(tokens, "b t h w -> b (t h w)"), recorder, only_last_logits=True)
        return VideoContext(
            keys=tuple(recorder.keys),  # type: ignore[arg-type]
            values=tuple(recorder.values),  # type: ignore[arg-type]
            n_frames=int(tokens.shape[1]),
            tokens_per_frame=c.tokens_per_frame,
        )

    def _check_window(self, tokens: torch.Tensor) -> None:
        c = self.config
        if tokens.ndim != 4 or tuple(tokens.shape[2:]) != (c.tokens_h, c.tokens_w) or not 1 <= tokens.shape[1] <= c.max_frames:
            raise ValueError(f"video tokens must be (B, 1..{c.max_frames}, {c.tokens_h}, {c.tokens_w}), got {tuple(tokens.shape)}")
        if tokens.dtype != torch.int64:
            raise ValueError(f"video tokens must be int64, got {tokens.dtype}")


def attention_scale(config: GPTConfig) -> float | None:
    """The world model's attention logit scale (None = SDPA's 1/sqrt(hd); 1/hd under muP).

    Video and action queries share one softmax per layer, so the expert must use the same scale;
    `VideoActionModel` checks this against the world model's attention modules.
    """
    return 1.0 / config.head_dim if config.mup else None
