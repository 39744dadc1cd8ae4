"""Configuration of the video GPT and the registry of its sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class GPTConfig:
    """Architecture of the next-token video GPT.

    A sequence is up to `max_frames` frames of `tokens_h x tokens_w` tokens from a `vocab_size`
    codebook, flattened in raster order (t, h, w).

    prev_frame_token_input: add an embedding of the previous frame's token at the same spatial
        position (a learned "none" entry for the first frame), so copying is the easy default.
    prev_frame_token_position: which position's previous-frame token is added at sequence
        position i: "input" (that of token i, the input) or "target" (that of token i + 1, the
        token position i predicts; copying the previous frame then needs no attention hop).
        Both look only at tokens before i + 1, so the model stays causal.
    ego_motion_input: add an embedding of the ego's motion into the frame being predicted
        (world_model/gpt/ego_motion.py): at position i, the motion into the frame of token i + 1
        (like prev_frame_token_position="target"), so the first token of a frame already knows it.
        Unknown motions add nothing, so the same model also predicts without them.
    prev_frame_warp: the previous-frame token (prev_frame_token_position "target") may come from the
        previous frame warped on the ground plane by the ego's motion into the frame being predicted
        (world_model/warp.py), then tokenized: `warped_prev` (B, T, h, w) of `forward` and the decoders,
        -1 where unknown (the raw previous frame's token is used there). Copying the warped frame is
        then the default, and the model learns what the flat-ground warp gets wrong. No parameters of
        its own; needs prev_frame_token_input with position "target" and ego_motion_input.
    ego_motion_scale: typical magnitudes (dx_forward_m, dy_left_m, dyaw_rad) of one frame step;
        motions are divided by them before the projection (defaults: about 1-2 std at 2-5 Hz).
    mup: muP parametrisation relative to `mup_base_width` (output logits scaled by
        base_width / n_embd, attention scale 1/head_dim, hidden-matrix init and LR scaled by
        base_width / n_embd; see `GPT.param_groups`). At n_embd == mup_base_width only the
        attention scale differs from the standard parametrisation.
    """

    vocab_size: int
    tokens_h: int
    tokens_w: int
    max_frames: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = False
    tie_weights: bool = True
    prev_frame_token_input: bool = False
    prev_frame_token_position: str = "input"
    mup: bool = False
    mup_base_width: int = 256
    ego_motion_input: bool = False
    ego_motion_scale: tuple[float, float, float] = (2.0, 0.1, 0.05)
    prev_frame_warp: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "tokens_h", "tokens_w", "max_frames", "n_layer", "n_head", "n_embd", "mup_base_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.prev_frame_token_position not in ("input", "target"):
            raise ValueError(f"GPTConfig.prev_frame_token_position must be 'input' or 'target', got {self.prev_frame_token_position!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.ego_motion_input, bool):
            raise ValueError(f"GPTConfig.ego_motion_input must be true or false, got {self.ego_motion_input!r}")
        scale = tuple(float(v) for v in self.ego_motion_scale)  # JSON / YAML give lists
        if len(scale) != 3 or not all(math.isfinite(v) and v > 0 for v in scale):
            raise ValueError(f"GPTConfig.ego_motion_scale must be 3 positive numbers (dx_forward_m, dy_left_m, dyaw_rad), got {self.ego_motion_scale!r}")
        object.__setattr__(self, "ego_motion_scale", scale)
        if not isinstance(self.prev_frame_warp, bool):
            raise ValueError(f"GPTConfig.prev_frame_warp must be true or false, got {self.prev_frame_warp!r}")
        if self.prev_frame_warp and not (self.prev_frame_token_input and self.prev_frame_token_position == "target" and self.ego_motion_input):
            raise ValueError("GPTConfig.prev_frame_warp needs prev_frame_token_input, prev_frame_token_position 'target' and ego_motion_input")

    @property
    def tokens_per_frame(self) -> int:
        return self.tokens_h * self.tokens_w

    @property
    def max_tokens(self) -> int:
        """Longest flattened sequence (context window) in tokens."""
        return self.max_frames * self.tokens_per_frame

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def width_mult(self) -> float:
        """n_embd / mup_base_width: how much wider than the muP base this model is."""
        return self.n_embd / self.mup_base_width

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "GPTConfig":
        """Rebuild from `dataclasses.asdict` output (e.g. checkpoint hparams); unknown keys are errors."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"GPTConfig: unknown fields {sorted(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class GPTSize:
    """Depth and width of one model size; head_dim = n_embd / n_head."""

    n_layer: int
    n_head: int
    n_embd: int


# Reference sizes: 24 layers, head dim 128 (S ~185M, B ~318M, L ~1.2B params with a 16,384-code
# tokenizer at 18x32 tokens and 8 frames). "tiny" is the CPU-sized model of the calibration run.
GPT_SIZES: dict[str, GPTSize] = {
    "tiny": GPTSize(n_layer=4, n_head=4, n_embd=256),
    "S": GPTSize(n_layer=24, n_head=6, n_embd=768),
    "B": GPTSize(n_layer=24, n_head=8, n_embd=1024),
    "L": GPTSize(n_layer=24, n_head=16, n_embd=2048),
}


def gpt_config(size: str, *, vocab_size: int, tokens_h: int, tokens_w: int, max_frames: int, **overrides: Any) -> GPTConfig:
    """GPTConfig of a registered size for a given tokenizer grid; `overrides` set any other field."""
    if size not in GPT_SIZES:
        raise KeyError(f"unknown GPT size {size!r}; known sizes: {sorted(GPT_SIZES)}")
    s = GPT_SIZES[size]
    config = GPTConfig(
        vocab_size=vocab_size,
        tokens_h=tokens_h,
        tokens_w=tokens_w,
        max_frames=max_frames,
        n_layer=s.n_layer,
        n_head=s.n_head,
        n_embd=s.n_embd,
    )
    return replace(config, **overrides)
