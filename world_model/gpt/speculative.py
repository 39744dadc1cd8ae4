"""Speculative decoding of one frame, with the previous frame's tokens as the draft.

Driving video changes little between frames at 2 Hz: the held-out demo world model keeps the
previous frame's token at about two thirds of the positions. So the previous frame is a free draft
of the next one. Each model call runs the last committed token followed by `block` draft tokens
(the draft for the positions after it) against the KV cache, and yields the model's predictions for
all of them at once; the drafts that agree with the model are kept, the first disagreement is
replaced by the model's own choice, and the cache is cut back to the kept tokens. A frame of
h*w tokens then costs far fewer than h*w sequential calls.

Greedy decoding keeps a draft token when it is the argmax: the frame is token for token the one
that token-by-token decoding gives (up to floating-point ties between the two ways of computing the
same logits). Stochastic decoding uses the speculative-sampling rule for a deterministic draft:
keep draft token d with probability p(d), else draw from p with d removed (renormalised), which
leaves every token distributed exactly as p (Leviathan et al. 2023, Chen et al. 2023). Rows of a
batch keep the shortest agreeing prefix among them, so one cache length serves the whole batch.

After each call the draft beyond the kept tokens is refined with the model's predictions at those
positions (Jacobi decoding: Song et al. 2021; Speculative Jacobi Decoding, Teng et al. 2024): they
were conditioned on a prefix that was right up to the disagreement, and agree with the final tokens
more often than the previous frame does.

The model calls run either through a growing `KVCache` (shapes change from call to call) or through
a `StaticDecoder` (every call the same shapes, so it can be compiled; world_model/gpt/static_step.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from world_model.gpt.kv_cache import KVCache
from world_model.gpt.model import GPT
from world_model.gpt.sampling import SamplingConfig, next_token_probs, sample_next_token
from world_model.gpt.static_step import StaticDecoder


@dataclass
class DecodeStats:
    """Counters of a decoding run (accumulated over frames): model calls, draft tokens proposed and kept."""

    model_calls: int = 0
    frames: int = 0
    draft_proposed: int = 0
    draft_accepted: int = 0

    @property
    def calls_per_frame(self) -> float:
        return self.model_calls / max(self.frames, 1)

    @property
    def acceptance(self) -> float:
        """Fraction of proposed draft tokens that were kept (0 when none were proposed)."""
        return self.draft_accepted / self.draft_proposed if self.draft_proposed else 0.0


def _leading_accepted(accepted: torch.Tensor) -> torch.Tensor:
    """(B,) number of leading True entries of each row of accepted (B, k) bool."""
    return accepted.long().cumprod(dim=1).sum(dim=1)


def _accept(logits: torch.Tensor, draft: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """Which draft tokens (B, k) int64 the model's logits (B, k, V) for their positions keep: (B, k) bool."""
    if sampling.is_greedy:
        return logits.argmax(dim=-1) == draft
    if generator is None:
        raise ValueError("speculative sampling needs an explicit torch.Generator")
    batch, k, vocab = logits.shape
    probs = next_token_probs(logits.reshape(batch * k, vocab), sampling).reshape(batch, k, vocab)
    p_draft = probs.gather(-1, draft[..., None])[..., 0]  # (B, k)
    uniform = torch.rand(batch, k, generator=generator, device=logits.device, dtype=probs.dtype)
    return uniform < p_draft


def _correct(logits: torch.Tensor, rejected: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """The token (B,) int64 replacing a rejected draft token `rejected` (B,) from the model's logits (B, V):
    the argmax when greedy, else a draw from the model's distribution without the rejected token."""
    if sampling.is_greedy:
        return logits.argmax(dim=-1)
    if generator is None:
        raise ValueError("speculative sampling needs an explicit torch.Generator")
    probs = next_token_probs(logits, sampling).scatter(-1, rejected[:, None], 0.0)  # (B, V)
    # A draft token holding all the mass is never rejected; should the rest underflow all the same,
    # the model's most likely other token stands in.
    mass = probs.sum(-1, keepdim=True)  # (B, 1)
    fallback = torch.nn.functional.one_hot(logits.scatter(-1, rejected[:, None], float("-inf")).argmax(-1), logits.shape[-1])
    probs = torch.where(mass > 0, probs / mass.clamp_min(torch.finfo(probs.dtype).tiny), fallback.to(probs.dtype))
    return torch.multinomial(probs, num_samples=1, generator=generator)[:, 0]


@torch.no_grad()
def decode_frame_speculative(
    model: GPT,
    sequence: torch.Tensor,
    n_known: int,
    cache: KVCache | StaticDecoder,
    draft: torch.Tensor,
    block: int,
    sampling: SamplingConfig,
    generator: torch.Generator | None,
    stats: DecodeStats | None = None,
    ego_motion: torch.Tensor | None = None,
    warped_prev: torch.Tensor | None = None,
) -> None:
    """Fill sequence[:, n_known : n_known + h*w] (B, L) int64 with the next frame's tokens, in place.

    sequence[:, :n_known] holds the window (whole frames from position 0). With a `KVCache`, the
    cache holds a prefix of it (fewer than n_known tokens) and ends holding the window and all but
    the last token of the new frame, as in token-by-token decoding. With a `StaticDecoder`,
    `sequence` must be its buffer and `block` its block: the window is prefilled here and every
    call has the decoder's fixed shape. draft (B, h*w) int64: the guess for the new frame (the
    previous frame's tokens); block >= 1: draft tokens verified per model call. ego_motion
    (B, n_frames + 1, 3): the motions into the window's frames and the new frame (NaN = unknown),
    with a `KVCache`; a `StaticDecoder` holds its own (`StaticDecoder.set_ego_motion`). warped_prev
    (B, n') int64: the warped previous-frame tokens flattened like `sequence` (GPTConfig.prev_frame_warp;
    -1 = unknown), with a `KVCache`; a `StaticDecoder` holds its own (`StaticDecoder.set_warped_prev`).
    """
    hw = model.config.tokens_per_frame
    if block < 1:
        raise ValueError(f"decode_frame_speculative: block must be >= 1, got {block}")
    if draft.shape != (sequence.shape[0], hw):
        raise ValueError(f"decode_frame_speculative: draft must be (B, {hw}), got {tuple(draft.shape)}")
    static = isinstance(cache, StaticDecoder)
    if static and (sequence is not cache.sequence or block != cache.block):
        raise ValueError("decode_frame_speculative: with a StaticDecoder, sequence must be its buffer and block its block")
    if static and (ego_motion is not None or warped_prev is not None):
        raise ValueError("decode_frame_speculative: a StaticDecoder takes the motions and warped tokens through its set_ego_motion / set_warped_prev")
    draft = draft.clone()
    stats = stats if stats is not None else DecodeStats()
    if static and n_known > 1:
        cache.prefill(n_known - 1)  # the window but its last token, which the first call runs
    committed = 0  # tokens of the new frame decided so far; the cache holds all but the last of them
    while committed < hw:
        k = min(block, hw - committed)
        end = n_known + committed + k
        sequence[:, n_known + committed : end] = draft[:, committed : committed + k]
        # Run what the cache lacks (the window's rest, or the newest committed token) and the k draft
        # tokens: the last k + 1 logits predict positions committed .. committed + k.
        if static:
            logits = cache.verify(end - k - 1)[:, : k + 1]  # (B, k + 1, V); the rest was padding
        else:
            logits = model.forward_flat(sequence[:, :end], cache, last_logits=k + 1, ego_motion=ego_motion, warped_prev=warped_prev)  # (B, k + 1, V)
        stats.model_calls += 1
        accepted = _accept(logits[:, :k], draft[:, committed : committed + k], sampling, generator)  # (B, k)
        kept = int(_leading_accepted(accepted).min())
        stats.draft_proposed += k * sequence.shape[0]
        stats.draft_accepted += kept * sequence.shape[0]
        position = committed + kept  # the first position whose draft is not kept by every row
        if not static:  # a StaticDecoder masks by position: what lies beyond is never attended to
            cache.truncate(n_known + position)  # keys/values of every kept token (the rest is overwritten later)
        if position < hw:
            if kept < k:  # rows that kept this draft token keep it; the others take the model's correction
                row_kept = accepted[:, kept]
                correction = _correct(logits[:, kept], draft[:, position], sampling, generator)
                sequence[:, n_known + position] = torch.where(row_kept, draft[:, position], correction)
            else:  # every draft token was kept: the last prediction is a plain next token
                sequence[:, n_known + position] = sample_next_token(logits[:, kept], sampling, generator)
            # Jacobi refinement: predictions beyond the kept prefix become the draft of those positions.
            # logits[:, j] predicts position committed + j; the last one may lie past the frame.
            n_guesses = min(k - kept, hw - 1 - position)
            if n_guesses > 0:
                guesses = logits[:, kept + 1 : kept + 1 + n_guesses].argmax(dim=-1)  # (B, n_guesses)
                draft[:, position + 1 : position + 1 + n_guesses] = guesses
        committed = position + 1
    # Like token-by-token decoding, leave the frame's last token out of the cache (the next window runs it).
    if not static:
        cache.truncate(min(cache.length, n_known + hw - 1))
    stats.frames += 1
