"""Speculative decoding with the previous frame as the draft: the same greedy tokens as
token-by-token decoding (random and trained weights) in far fewer model calls, and the same
distribution when sampling, reproducibly for a fixed generator."""

from __future__ import annotations

import pytest
import torch

from world_model.gpt import GPT, GPTConfig, SamplingConfig, rollout
from world_model.gpt.speculative import DecodeStats

CONFIG = GPTConfig(vocab_size=32, tokens_h=4, tokens_w=6, max_frames=4, n_layer=2, n_head=2, n_embd=32, prev_frame_token_input=True)


def random_model(seed: int, config: GPTConfig = CONFIG) -> GPT:
    torch.manual_seed(seed)
    model = GPT(config).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model


def drifting_video(batch: int, n_frames: int, change: float, seed: int) -> torch.Tensor:
    """(B, T, h, w) tokens where each frame is the previous one with a fraction `change` of tokens redrawn."""
    g = torch.Generator().manual_seed(seed)
    frames = [torch.randint(0, CONFIG.vocab_size, (batch, CONFIG.tokens_h, CONFIG.tokens_w), generator=g)]
    for _ in range(n_frames - 1):
        redraw = torch.rand(frames[-1].shape, generator=g) < change
        frames.append(torch.where(redraw, torch.randint(0, CONFIG.vocab_size, frames[-1].shape, generator=g), frames[-1]))
    return torch.stack(frames, dim=1)


@pytest.fixture(scope="module")
def trained_model() -> GPT:
    """A GPT trained (a few hundred steps) on video that mostly repeats itself: it learns to copy."""
    torch.manual_seed(0)
    model = GPT(CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(300):
        video = drifting_video(16, CONFIG.max_frames, change=0.15, seed=step)
        loss = model(video, targets=video).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.double().eval()


@pytest.mark.parametrize("block", [1, 3, 8, 64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_speculative_tokens_equal_token_by_token_on_random_weights(seed, block):
    model = random_model(seed)
    context = drifting_video(3, 2, change=0.3, seed=seed)
    plain = rollout(model, context, 4, speculative_block=0)  # the window grows, then slides
    fast = rollout(model, context, 4, speculative_block=block)
    assert torch.equal(fast, plain)
    assert len(plain.unique()) > 5


def test_greedy_speculative_tokens_equal_token_by_token_on_trained_weights_in_fewer_calls(trained_model):
    context = drifting_video(2, 3, change=0.15, seed=1234)
    plain_stats, fast_stats = DecodeStats(), DecodeStats()
    plain = rollout(trained_model, context, 3, speculative_block=0, stats=plain_stats)
    fast = rollout(trained_model, context, 3, stats=fast_stats)
    assert torch.equal(fast, plain)
    hw = CONFIG.tokens_per_frame
    assert plain_stats.calls_per_frame == hw and plain_stats.frames == fast_stats.frames == 3
    assert fast_stats.acceptance > 0.5  # the trained model copies most of the previous frame
    assert fast_stats.calls_per_frame < hw / 3


def test_sampling_is_reproducible_with_a_fixed_generator(trained_model):
    context = drifting_video(2, 2, change=0.15, seed=7)
    sampling = SamplingConfig(temperature=1.0, top_k=8)
    draws = [rollout(trained_model, context, 2, sampling, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1])
    other = rollout(trained_model, context, 2, sampling, torch.Generator().manual_seed(4))
    assert not torch.equal(draws[0], other)
    with pytest.raises(ValueError, match="Generator"):
        rollout(trained_model, context, 1, sampling)


def exact_marginals(model: GPT, window: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """(hw, V) exact marginal distribution of each token of the next frame, by enumerating every frame."""
    from itertools import product

    from world_model.gpt.sampling import next_token_probs

    c = model.config
    hw, vocab = c.tokens_per_frame, c.vocab_size
    frames = torch.tensor(list(product(range(vocab), repeat=hw)))  # (V^hw, hw)
    sequence = torch.cat([window.flatten()[None].expand(len(frames), -1), frames], dim=1)  # (N, n_known + hw)
    n_known = window.numel()
    logits = model.forward_flat(sequence)[:, n_known - 1 : -1]  # (N, hw, V): position i predicts token i
    probs = next_token_probs(logits.reshape(-1, vocab), sampling).reshape(len(frames), hw, vocab)
    token_probs = probs.gather(-1, frames[..., None])[..., 0]  # (N, hw)
    joint = token_probs.prod(dim=1)  # (N,)
    return torch.stack([torch.zeros(vocab, dtype=joint.dtype).index_add_(0, frames[:, i], joint) for i in range(hw)])


@pytest.mark.parametrize("batch", [1, 400])
def test_speculative_sampling_keeps_the_models_distribution(batch):
    """Per-position marginals of sampled frames against the exact ones (enumerated): a tiny vocabulary
    and frame, a draft that the model often but not always keeps. batch 1 exercises long accepted
    runs, batch 400 the shortest-prefix rule and the residual draws."""
    config = GPTConfig(vocab_size=3, tokens_h=2, tokens_w=2, max_frames=2, n_layer=1, n_head=1, n_embd=16, prev_frame_token_input=True)
    torch.manual_seed(4)
    model = GPT(config).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
        model.prev_token_emb.weight[:3] += model.token_emb.weight  # favour copying the previous frame
    window = torch.tensor([[[[0, 1], [2, 1]]]])  # (1, 1, 2, 2)
    sampling = SamplingConfig(temperature=1.0)
    with torch.no_grad():
        exact = exact_marginals(model, window, sampling)  # (4, 3)
    generator = torch.Generator().manual_seed(0)
    n_draws = 4000
    frames = torch.cat([rollout(model, window.expand(batch, -1, -1, -1), 1, sampling, generator, speculative_block=3)[:, 0].flatten(1) for _ in range(n_draws // batch)])
    empirical = torch.stack([torch.bincount(frames[:, i], minlength=3).double() / len(frames) for i in range(4)])
    p_draft = exact.gather(1, window.flatten()[:, None])[:, 0]  # (4,) how likely each draft token is
    assert exact.max() < 0.95 and ((p_draft > 0.3) & (p_draft < 0.9)).sum() >= 2  # drafts kept often, not always
    # 4000 draws: a marginal's standard error is at most 0.008; 0.035 is over 4 standard errors.
    assert (empirical - exact).abs().max() < 0.035, (empirical, exact)
