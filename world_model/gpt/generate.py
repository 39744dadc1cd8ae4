"""Frame generation with the video GPT: one frame, and rollouts beyond the context window.

Sliding window. Temporal embeddings are absolute over `max_frames` positions, so a window cannot
simply be extended past the last position. Each new frame is predicted from the newest
`max_frames - 1` known frames (all of them while fewer are known), encoded at temporal positions
0.. and the new frame takes the next position. Once the window is full it therefore moves by one
frame per generated frame: the oldest frame is dropped and the remaining frames are re-encoded at
shifted positions, which invalidates their cached keys/values, so the cache is refilled with one
parallel prefill of (max_frames - 1) * h * w tokens per frame. (The reference implementation kept
the oldest frames instead, so its long rollouts stopped advancing.) While the window still grows,
the cache is reused and only the previous frame's last token is run before decoding.

Ego motion. A conditioned model (GPTConfig.ego_motion_input) takes the motion into every frame
(world_model/gpt/ego_motion.py): `rollout` takes them for the context and the future frames
together, (B, Tc + F, 3) aligned with the frames (NaN = unknown; the context's may all be NaN),
and hands each window its slice, (B, Tw + 1, 3) for the window and the frame being generated.
Without motions (None) the model predicts unconditioned.

Warped previous frame. A model with GPTConfig.prev_frame_warp takes, for every frame, the tokens of
the previous frame warped on the ground plane by the motion into it (-1 = unknown): `warped_prev`
(B, Tc + F, h, w) aligned with the frames like the motions. `rollout` fills the future frames' entries
that are unknown with a `warper` (the previous frame's tokens and the motion -> warped tokens; e.g.
decode, warp, encode), frame by frame, since each needs the frame generated before it. Where it is
known, the warped frame is also the speculative draft (better than the unwarped last frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from einops import rearrange

from world_model.gpt.kv_cache import KVCache
from world_model.gpt.model import GPT
from world_model.gpt.sampling import SamplingConfig, sample_next_token
from world_model.gpt.speculative import DecodeStats, decode_frame_speculative
from world_model.gpt.static_step import StaticDecoder

GREEDY = SamplingConfig.greedy()
# Draft tokens verified per model call by speculative decoding (world_model/gpt/speculative.py),
# capped at the rest of the frame: the whole frame at every size we train (tiny: 128 tokens, S: 576).
# On 2 CPU cores a whole-frame block beat blocks of 4-64 (benchmarks/README.md); 0 decodes token by token.
SPECULATIVE_BLOCK = 4096


class TokenWarper(Protocol):
    """(B, h, w) int64 tokens of a frame and (B, 3) float motions into the next frame [dx_forward_m,
    dy_left_m, dyaw_rad] (NaN = unknown) -> (B, h, w) int64 tokens of that frame warped on the ground
    plane into the next one, -1 where the warp is unknown (no motion, no camera)."""

    def __call__(self, tokens: torch.Tensor, motion: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class WindowEvent:
    """The frames that conditioned one generated frame of a rollout.

    future_index: which generated frame (0 = first after the context).
    first_frame, num_frames: the window, as indices into the context + generated frames; the new
        frame is predicted at temporal position num_frames.
    window_moved: the window's first frame changed since the previous generated frame.
    """

    future_index: int
    first_frame: int
    num_frames: int
    window_moved: bool


def _check_inputs(
    model: GPT, tokens: torch.Tensor, name: str, ego_motion: torch.Tensor | None = None, n_motion_frames: int = 0,
    warped_prev: torch.Tensor | None = None,
) -> None:
    c = model.config
    if tokens.ndim != 4 or tuple(tokens.shape[2:]) != (c.tokens_h, c.tokens_w) or tokens.shape[1] < 1:
        raise ValueError(f"{name} must be (B, T>=1, {c.tokens_h}, {c.tokens_w}) tokens, got {tuple(tokens.shape)}")
    if tokens.dtype != torch.int64:
        raise ValueError(f"{name} must be int64, got {tokens.dtype}")
    if model.training and c.dropout > 0:
        raise ValueError("generation with dropout active: call model.eval() first")
    if ego_motion is not None:
        expected = (tokens.shape[0], n_motion_frames, 3)
        if tuple(ego_motion.shape) != expected or not ego_motion.is_floating_point():
            raise ValueError(f"{name.split(':')[0]}: ego_motion must be float {expected} (the motions into every frame, NaN = unknown), got {tuple(ego_motion.shape)} {ego_motion.dtype}")
    if warped_prev is not None:
        expected = (tokens.shape[0], n_motion_frames, c.tokens_h, c.tokens_w)
        if tuple(warped_prev.shape) != expected or warped_prev.dtype != torch.int64:
            raise ValueError(f"{name.split(':')[0]}: warped_prev must be int64 {expected} (-1 = unknown), got {tuple(warped_prev.shape)} {warped_prev.dtype}")


@torch.no_grad()
def generate_frame(
    model: GPT,
    window_tokens: torch.Tensor,
    sampling: SamplingConfig = GREEDY,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    kv_cache: KVCache | None = None,
    speculative_block: int = SPECULATIVE_BLOCK,
    stats: DecodeStats | None = None,
    static_decoder: StaticDecoder | None = None,
    ego_motion: torch.Tensor | None = None,
    warped_prev: torch.Tensor | None = None,
) -> torch.Tensor:
    """Next frame (B, h, w) int64 after window_tokens (B, Tw, h, w), 1 <= Tw <= max_frames - 1.

    ego_motion: None (unconditioned), or (B, Tw + 1, 3) float the motions into the window's frames
    and into the new frame (NaN = unknown; see the module docstring). warped_prev: None, or
    (B, Tw + 1, h, w) int64 the warped previous-frame tokens of the window's frames and of the new
    frame (-1 = unknown; a model with GPTConfig.prev_frame_warp).

    The new frame is decoded at temporal position Tw: speculatively with the window's last frame as
    the draft, `speculative_block` draft tokens per model call (the same tokens as token-by-token
    decoding when greedy, the same distribution when sampling), or token by token when
    speculative_block is 0. With `use_cache`, a given `kv_cache` may already hold a prefix (fewer
    than Tw*h*w tokens) of the flattened window, encoded from position 0; only the rest is
    prefilled, and the cache ends holding the window and all but the last token of the new frame.
    `use_cache=False` runs the full sequence for every token (the slow reference path, token by
    token). `stats` counts model calls and draft tokens kept. A `static_decoder` (built for this
    model and batch) runs the speculative calls with fixed shapes, `static_decoder.block` draft
    tokens each (possibly compiled); `kv_cache` and `speculative_block` are then not used.
    """
    _check_inputs(model, window_tokens, "generate_frame: window_tokens", ego_motion, window_tokens.shape[1] + 1, warped_prev)
    c = model.config
    if not c.prev_frame_warp:
        warped_prev = None
    batch, n_window_frames = window_tokens.shape[:2]
    if n_window_frames > c.max_frames - 1:
        raise ValueError(f"generate_frame: window of {n_window_frames} frames leaves no room in max_frames={c.max_frames}")
    hw = c.tokens_per_frame
    n_known = n_window_frames * hw
    warped_flat = None if warped_prev is None else rearrange(warped_prev, "b t h w -> b (t h w)")  # (B, n_known + hw)

    def draft_from(last_frame: torch.Tensor) -> torch.Tensor:
        """(B, hw) the speculative draft: the new frame's warped tokens where known, else the last frame's."""
        if warped_flat is None:
            return last_frame
        warped_new = warped_flat[:, n_known : n_known + hw]
        return torch.where(warped_new >= 0, warped_new, last_frame)

    if static_decoder is not None:
        if static_decoder.model is not model or static_decoder.batch != batch or not use_cache:
            raise ValueError(f"generate_frame: static_decoder is for another model or batch ({static_decoder.batch}, here {batch}), or use_cache is off")
        sequence = static_decoder.sequence  # (B, n_slots)
        sequence[:, :n_known] = rearrange(window_tokens, "b t h w -> b (t h w)")
        static_decoder.set_ego_motion(ego_motion)
        static_decoder.set_warped_prev(warped_prev)
        draft = draft_from(sequence[:, n_known - hw : n_known].clone())  # (B, hw) the warped or the window's last frame
        decode_frame_speculative(model, sequence, n_known, static_decoder, draft, static_decoder.block, sampling, generator, stats)
        return rearrange(sequence[:, n_known : n_known + hw].clone(), "b (h w) -> b h w", h=c.tokens_h)
    sequence = torch.empty(batch, n_known + hw, dtype=torch.int64, device=window_tokens.device)  # (B, n_known + hw)
    sequence[:, :n_known] = rearrange(window_tokens, "b t h w -> b (t h w)")

    if use_cache:
        cache = kv_cache if kv_cache is not None else KVCache(c.n_layer, c.max_tokens)
        if cache.length >= n_known:
            raise ValueError(f"generate_frame: kv_cache holds {cache.length} tokens, the window only {n_known}")
        if speculative_block > 0:
            draft = draft_from(sequence[:, n_known - hw : n_known])  # (B, hw) the warped or the window's last frame
            decode_frame_speculative(model, sequence, n_known, cache, draft, speculative_block, sampling, generator, stats, ego_motion, warped_flat)
            return rearrange(sequence[:, n_known:], "b (h w) -> b h w", h=c.tokens_h)
        logits = model.forward_flat(sequence[:, :n_known], cache, only_last_logits=True, ego_motion=ego_motion, warped_prev=warped_flat)[:, -1]  # (B, V)
        for i in range(hw):
            sequence[:, n_known + i] = sample_next_token(logits, sampling, generator)
            if i < hw - 1:
                logits = model.forward_flat(sequence[:, : n_known + i + 1], cache, only_last_logits=True, ego_motion=ego_motion, warped_prev=warped_flat)[:, -1]
    else:
        for i in range(hw):
            logits = model.forward_flat(sequence[:, : n_known + i], only_last_logits=True, ego_motion=ego_motion, warped_prev=warped_flat)[:, -1]  # (B, V)
            sequence[:, n_known + i] = sample_next_token(logits, sampling, generator)
    if stats is not None:
        stats.model_calls += hw
        stats.frames += 1
    return rearrange(sequence[:, n_known:], "b (h w) -> b h w", h=c.tokens_h)


@torch.no_grad()
def rollout(
    model: GPT,
    context_tokens: torch.Tensor,
    n_future_frames: int,
    sampling: SamplingConfig = GREEDY,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    on_window: Callable[[WindowEvent], None] | None = None,
    speculative_block: int = SPECULATIVE_BLOCK,
    stats: DecodeStats | None = None,
    static_decoder: StaticDecoder | None = None,
    ego_motion: torch.Tensor | None = None,
    warped_prev: torch.Tensor | None = None,
    warper: TokenWarper | None = None,
) -> torch.Tensor:
    """Generate n_future_frames frames (B, n_future, h, w) int64 after context_tokens (B, Tc, h, w).

    ego_motion: None (unconditioned), or (B, Tc + n_future, 3) float the motions into the context
    and future frames, aligned with them (NaN = unknown; row 0 is never used): e.g. the planned
    motions of the future frames after NaN or the observed motions of the context.

    warped_prev: None, or (B, Tc + n_future, h, w) int64 the warped previous-frame tokens of the
    context and future frames (-1 = unknown; a model with GPTConfig.prev_frame_warp), or the context's
    only (B, Tc, h, w) (the future frames' unknown); `warper` fills the unknown entries of future frames
    from the frame before them and its motion (needs ego_motion).

    Any Tc >= 1 works (only the newest max_frames - 1 frames are used). The window slides past the
    context as described in the module docstring; `on_window` sees one WindowEvent per frame.
    Frames are decoded as `generate_frame` decodes them (`speculative_block`, `stats`,
    `static_decoder`: the window is then prefilled for every frame).
    """
    if warped_prev is not None and warped_prev.ndim == 4 and warped_prev.shape[1] == context_tokens.shape[1] and n_future_frames > 0:
        unknown = warped_prev.new_full((warped_prev.shape[0], n_future_frames, *warped_prev.shape[2:]), -1)
        warped_prev = torch.cat([warped_prev, unknown], dim=1)  # the context's only: the future frames' unknown
    _check_inputs(model, context_tokens, "rollout: context_tokens", ego_motion, context_tokens.shape[1] + n_future_frames, warped_prev)
    c = model.config
    if c.max_frames < 2:
        raise ValueError("rollout needs max_frames >= 2 (a window of at least one frame plus the new one)")
    if n_future_frames < 0:
        raise ValueError(f"rollout: n_future_frames must be >= 0, got {n_future_frames}")
    batch, n_context = context_tokens.shape[:2]
    frames = torch.empty(batch, n_context + n_future_frames, c.tokens_h, c.tokens_w, dtype=torch.int64, device=context_tokens.device)
    frames[:, :n_context] = context_tokens
    warping = c.prev_frame_warp and ego_motion is not None and (warped_prev is not None or warper is not None)
    if warping:
        warped = torch.full_like(frames, -1) if warped_prev is None else warped_prev.clone()  # (B, Tc + F, h, w)
    cache = KVCache(c.n_layer, c.max_tokens) if use_cache and static_decoder is None else None
    previous_first: int | None = None
    for i in range(n_future_frames):
        n_known = n_context + i
        first = max(0, n_known - (c.max_frames - 1))
        moved = previous_first is not None and first != previous_first
        if cache is not None and first != previous_first:
            cache.reset()  # the window's frames moved to new temporal positions: re-encode them
        if on_window is not None:
            on_window(WindowEvent(future_index=i, first_frame=first, num_frames=n_known - first, window_moved=moved))
        window_motion = None if ego_motion is None else ego_motion[:, first : n_known + 1]  # (B, Tw + 1, 3)
        window_warped = None
        if warping:
            if warper is not None:
                unknown = (warped[:, n_known] < 0).flatten(1).all(dim=1)  # (B,) rows the caller left to the warper
                if bool(unknown.any()):
                    fresh = warper(frames[:, n_known - 1], ego_motion[:, n_known])  # (B, h, w)
                    warped[:, n_known] = torch.where(unknown[:, None, None], fresh, warped[:, n_known])
            window_warped = warped[:, first : n_known + 1]  # (B, Tw + 1, h, w)
        frames[:, n_known] = generate_frame(
            model, frames[:, first:n_known], sampling, generator, use_cache, cache, speculative_block, stats, static_decoder, window_motion,
            window_warped,
        )
        previous_first = first
    return frames[:, n_context:]
