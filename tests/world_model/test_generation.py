"""Generation: KV cache == no cache, a sliding window that slides, samplers and their seeds."""

from __future__ import annotations

import pytest
import torch

from world_model.gpt import GPT, GPTConfig, KVCache, SamplingConfig, WindowEvent, generate_frame, rollout, sample_next_token

CONFIG = GPTConfig(vocab_size=48, tokens_h=2, tokens_w=3, max_frames=4, n_layer=2, n_head=2, n_embd=32, prev_frame_token_input=True)


def make_model(dtype: torch.dtype = torch.float64) -> GPT:
    """A random model whose greedy rollouts vary with the input (float64: no near-ties flip)."""
    torch.manual_seed(0)
    model = GPT(CONFIG).to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model


def context(n_frames: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, CONFIG.vocab_size, (batch, n_frames, CONFIG.tokens_h, CONFIG.tokens_w), generator=g)


def test_cached_logits_match_full_forward():
    model = make_model(torch.float32)
    tokens = context(3).flatten(1)  # (2, 18)
    full = model.forward_flat(tokens)  # (2, 18, V)
    cache = KVCache(CONFIG.n_layer, CONFIG.max_tokens)
    chunks = [model.forward_flat(tokens[:, :7], cache)]  # prefill
    chunks += [model.forward_flat(tokens[:, :n], cache) for n in range(8, 12)]  # one token at a time
    chunks.append(model.forward_flat(tokens, cache))  # a multi-token chunk after cached tokens
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 18
    with pytest.raises(ValueError, match="no new tokens"):
        model.forward_flat(tokens, cache)


def test_cached_and_uncached_greedy_rollouts_agree_through_the_sliding_window():
    model = make_model()
    ctx = context(2)
    n_future = 5  # windows grow to 3 frames, then slide
    cached = rollout(model, ctx, n_future, use_cache=True)
    uncached = rollout(model, ctx, n_future, use_cache=False)
    assert cached.shape == (2, n_future, 2, 3) and cached.dtype == torch.int64
    assert torch.equal(cached, uncached)
    assert len(cached.unique()) > 3  # the model's output depends on its input
    # The first rolled-out frame is generate_frame on the context.
    assert torch.equal(generate_frame(model, ctx), cached[:, 0])
    # Batch rows are independent rollouts.
    assert torch.equal(rollout(model, ctx[1:], n_future), cached[1:])


def test_window_slides_over_a_long_rollout():
    model = make_model()
    m = CONFIG.max_frames
    events: list[WindowEvent] = []
    frames = rollout(model, context(m), 3 * m, on_window=events.append)
    assert frames.shape == (2, 3 * m, 2, 3)
    # Context of max_frames: every new frame is predicted from the newest max_frames - 1 frames.
    assert [e.first_frame for e in events] == [i + 1 for i in range(3 * m)]
    assert all(e.num_frames == m - 1 for e in events)
    assert [e.window_moved for e in events] == [False] + [True] * (3 * m - 1)
    # A short context: the window grows first, then slides.
    events.clear()
    rollout(model, context(1), 2 * m, on_window=events.append)
    assert [(e.first_frame, e.num_frames) for e in events] == [(0, 1), (0, 2), (0, 3), (1, 3), (2, 3), (3, 3), (4, 3), (5, 3)]
    assert not events[2].window_moved and events[3].window_moved


class PlusOneModel(torch.nn.Module):
    """Predicts every token as the previous frame's token at the same place plus one (mod V),
    so its rollouts advance only if each new frame is conditioned on the newest frame."""

    def __init__(self) -> None:
        super().__init__()
        self.config = CONFIG

    def forward_flat(self, tokens_flat, kv_cache=None, only_last_logits=False, last_logits=None, ego_motion=None, warped_prev=None):
        n = tokens_flat.shape[1]
        assert n <= CONFIG.max_tokens
        start = 0 if kv_cache is None else kv_cache.length
        if kv_cache is not None:
            kv_cache.advance(n - start)
        next_positions = torch.arange(start, n) + 1  # logits at position p predict token p + 1
        source = tokens_flat[:, (next_positions - CONFIG.tokens_per_frame).clamp(min=0)]
        logits = torch.nn.functional.one_hot((source + 1) % CONFIG.vocab_size, CONFIG.vocab_size).float()
        if only_last_logits or last_logits is not None:
            return logits[:, -(1 if only_last_logits else last_logits) :]
        return logits


@pytest.mark.parametrize("use_cache", [True, False])
def test_long_rollout_keeps_advancing(use_cache):
    ctx = context(CONFIG.max_frames)
    frames = rollout(PlusOneModel(), ctx, 3 * CONFIG.max_frames, use_cache=use_cache)
    steps = torch.arange(1, 3 * CONFIG.max_frames + 1)[None, :, None, None]
    assert torch.equal(frames, (ctx[:, -1:] + steps) % CONFIG.vocab_size)


def test_top_k_one_is_greedy_and_sampling_is_seeded():
    model = make_model()
    ctx = context(2)
    greedy = rollout(model, ctx, 3)
    top1 = rollout(model, ctx, 3, SamplingConfig(temperature=1.0, top_k=1), torch.Generator().manual_seed(5))
    assert torch.equal(top1, greedy)
    sampling = SamplingConfig(temperature=1.5, top_p=0.9)
    a = rollout(model, ctx, 3, sampling, torch.Generator().manual_seed(7))
    b = rollout(model, ctx, 3, sampling, torch.Generator().manual_seed(7))
    c = rollout(model, ctx, 3, sampling, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Token by token, cache or not, the same generator draws give the same stochastic rollout
    # (speculative sampling draws differently: same distribution, tests/world_model/test_speculative.py).
    plain = rollout(model, ctx, 3, sampling, torch.Generator().manual_seed(7), speculative_block=0)
    d = rollout(model, ctx, 3, sampling, torch.Generator().manual_seed(7), use_cache=False)
    assert torch.equal(plain, d)
    with pytest.raises(ValueError, match="torch.Generator"):
        rollout(model, ctx, 1, sampling)


def test_top_k_and_top_p_keep_the_most_likely_tokens():
    probs = torch.tensor([[0.1, 0.5, 0.2, 0.2 - 1e-3, 1e-3]])
    logits = probs.log().expand(2000, -1)
    g = torch.Generator().manual_seed(0)

    def drawn(sampling: SamplingConfig) -> set[int]:
        return set(sample_next_token(logits, sampling, g).tolist())

    assert drawn(SamplingConfig(top_p=0.5)) == {1}  # token 1 alone holds 0.5
    assert drawn(SamplingConfig(top_p=0.6)) == {1, 2}
    assert drawn(SamplingConfig(top_k=3)) == {1, 2, 3}
    assert drawn(SamplingConfig(top_k=3, top_p=0.8)) == {1, 2, 3}
    assert drawn(SamplingConfig()) >= {0, 1, 2, 3}
    assert drawn(SamplingConfig.greedy()) == {1}
    # Temperature sharpens: at T=0.1 token 1 dominates (0.5 vs 0.2 -> ratio 2.5**10).
    counts = torch.bincount(sample_next_token(logits, SamplingConfig(temperature=0.1), g), minlength=5)
    assert counts[1] > 1990


def test_generation_input_checks():
    model = make_model()
    with pytest.raises(ValueError, match="no room"):
        generate_frame(model, context(CONFIG.max_frames))
    with pytest.raises(ValueError, match="int64"):
        rollout(model, context(2).int(), 1)
    dropout_model = GPT(GPTConfig(**{**CONFIG.__dict__, "dropout": 0.1}))
    with pytest.raises(ValueError, match="model.eval"):
        rollout(dropout_model, context(2), 1)
    with pytest.raises(ValueError, match="SamplingConfig.top_p"):
        SamplingConfig(top_p=0.0)
