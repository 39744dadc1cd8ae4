"""Fixed-shape decode steps (world_model/gpt/static_step.py): every verification call has the same
shapes, and decoding through them gives the tokens of token-by-token decoding, eager and compiled."""

from __future__ import annotations

import pytest
import torch

from tests.world_model.test_speculative import CONFIG, drifting_video, random_model
from world_model.gpt import SamplingConfig, rollout
from world_model.gpt.generate import generate_frame
from world_model.gpt.speculative import DecodeStats
from world_model.gpt.static_step import StaticDecoder


@pytest.mark.parametrize("block", [1, 5, 24, 40])
@pytest.mark.parametrize("seed", [0, 1])
def test_static_greedy_rollout_equals_token_by_token(seed, block):
    model = random_model(seed)
    context = drifting_video(2, 2, change=0.3, seed=seed)
    plain = rollout(model, context, 4, speculative_block=0)  # the window grows, then slides
    decoder = StaticDecoder(model, batch=2, block=block, device="cpu")
    stats = DecodeStats()
    fast = rollout(model, context, 4, static_decoder=decoder, stats=stats)
    assert torch.equal(fast, plain)
    assert stats.frames == 4 and stats.model_calls <= 4 * CONFIG.tokens_per_frame


def test_every_verification_call_has_the_same_shapes():
    model = random_model(0)
    decoder = StaticDecoder(model, batch=1, block=7, device="cpu")
    shapes = set()
    original = model.forward_positions

    def recording(sequence, positions, cache, ego_motion=None, warped_prev=None):
        shapes.add((tuple(sequence.shape), tuple(positions.shape), tuple(cache.keys.shape)))
        return original(sequence, positions, cache, ego_motion, warped_prev)

    decoder._step = recording
    generate_frame(model, drifting_video(1, 3, change=0.5, seed=3), static_decoder=decoder)  # 24 tokens: a padded last block
    assert shapes == {((1, CONFIG.max_tokens + 7), (8,), (CONFIG.n_layer, 1, CONFIG.n_head, CONFIG.max_tokens + 7, CONFIG.head_dim))}


def test_static_sampling_is_reproducible_and_matches_the_growing_cache():
    model = random_model(4)
    window = drifting_video(3, 2, change=0.2, seed=4)
    sampling = SamplingConfig(temperature=1.0, top_k=8)
    decoder = StaticDecoder(model, batch=3, block=6, device="cpu")
    runs = [generate_frame(model, window, sampling, torch.Generator().manual_seed(9), static_decoder=decoder) for _ in range(2)]
    dynamic = generate_frame(model, window, sampling, torch.Generator().manual_seed(9), speculative_block=6)
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0], dynamic)  # same draws in the same order: the same logits up to rounding


def test_a_decoder_refuses_another_batch():
    model = random_model(0)
    decoder = StaticDecoder(model, batch=2, block=4, device="cpu")
    with pytest.raises(ValueError, match="another model or batch"):
        generate_frame(model, drifting_video(1, 2, change=0.3, seed=0), static_decoder=decoder)
    with pytest.raises(ValueError, match="compile_mode"):
        StaticDecoder(model, batch=1, block=4, device="cpu", compile_mode="fast")


@pytest.mark.slow
def test_compiled_static_step_gives_the_same_tokens():
    """torch.compile of the fixed-shape step (inductor's CPU backend here; CUDA graphs with
    mode="reduce-overhead" on a GPU) decodes the same frames as eager token-by-token decoding."""
    model = random_model(1).float()
    context = drifting_video(1, 3, change=0.3, seed=1)
    plain = rollout(model, context, 2, speculative_block=0)
    decoder = StaticDecoder(model, batch=1, block=8, device="cpu", compile_mode="default")
    assert torch.equal(rollout(model, context, 2, static_decoder=decoder), plain)
