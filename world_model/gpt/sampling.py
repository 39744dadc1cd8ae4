"""Choosing the next token from logits: greedy, temperature, top-k, top-p (nucleus)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    """temperature 0 means greedy (argmax); top_k / top_p restrict sampling when set.

    top_k keeps the k most likely tokens; top_p keeps the smallest set of most likely tokens whose
    probability reaches p (always at least one). Both are applied after the temperature.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"SamplingConfig.temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"SamplingConfig.top_k must be >= 1 or None, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"SamplingConfig.top_p must be in (0, 1] or None, got {self.top_p}")

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0

    @classmethod
    def greedy(cls) -> "SamplingConfig":
        return cls(temperature=0.0)


def next_token_probs(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """The distribution (B, V) float32 that stochastic `sampling` draws from, given logits (B, V):
    softmax at the temperature, restricted by top-k / top-p and renormalised."""
    if sampling.is_greedy:
        raise ValueError("next_token_probs: greedy sampling has no distribution to draw from (argmax)")
    logits = logits.float() / sampling.temperature  # (B, V)
    if sampling.top_k is not None and sampling.top_k < logits.shape[-1]:
        kth_largest = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if sampling.top_p is not None and sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        sorted_probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the more likely ones already reach top_p (the first is always kept).
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # (B, V)
        drop_sorted = mass_before >= sampling.top_p
        drop = drop_sorted.scatter(dim=-1, index=order, src=drop_sorted)  # back to vocab order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits.softmax(dim=-1)  # (B, V)


def sample_next_token(logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """Next tokens (B,) int64 from logits (B, V).

    Stochastic sampling draws from `generator`, which must live on the logits' device; it is
    required unless the sampling is greedy.
    """
    if sampling.is_greedy:
        return logits.argmax(dim=-1)
    if generator is None:
        raise ValueError("sample_next_token: stochastic sampling needs an explicit torch.Generator")
    probs = next_token_probs(logits, sampling)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (B,)
