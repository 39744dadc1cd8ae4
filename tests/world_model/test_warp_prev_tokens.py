"""The warped previous frame as the world model's copy source (GPTConfig.prev_frame_warp): the GPT input,
the decoders that carry it, and the warped tokens made from frames and from tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.schema import CameraIntrinsics
from sim_eval.render.camera_model import PinholeCamera
from world_model.gpt.config import GPTConfig
from world_model.gpt.generate import generate_frame, rollout
from world_model.gpt.model import GPT
from world_model.gpt.static_step import StaticDecoder
from world_model.tokenizer import ConvTokenizer, tokenizer_config
from world_model.warp import warp_frames
from world_model.warp_tokens import GroundTokenWarper, warped_frame_tokens


def _gpt(warp: bool = True, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(
        vocab_size=16, tokens_h=2, tokens_w=3, max_frames=3, n_layer=2, n_head=2, n_embd=16,
        prev_frame_token_input=True, prev_frame_token_position="target", ego_motion_input=True, prev_frame_warp=warp,
    )
    return GPT(config).eval()


def test_unknown_or_unwarped_tokens_give_the_plain_model_and_warped_ones_change_it():
    model = _gpt()
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(16, (2, 3, 2, 3), generator=g)
    motion = torch.randn(2, 3, 3, generator=g)
    plain = model(tokens, ego_motion=motion).logits
    torch.testing.assert_close(model(tokens, ego_motion=motion, warped_prev=torch.full_like(tokens, -1)).logits, plain, rtol=0, atol=0)
    # warped tokens equal to the raw previous frame's: the same inputs as the plain path
    torch.testing.assert_close(model(tokens, ego_motion=motion, warped_prev=tokens.roll(1, dims=1)).logits, plain)
    warped = torch.randint(16, tokens.shape, generator=g)
    changed = model(tokens, ego_motion=motion, warped_prev=warped).logits
    hw = 6
    # causal in the warped input too: position i only sees the warped token of position i + 1 and earlier
    torch.testing.assert_close(changed[:, : hw - 1], plain[:, : hw - 1])  # frame 0 has no previous frame
    assert not torch.allclose(changed[:, hw - 1 :], plain[:, hw - 1 :])
    # only some rows known: the others are the plain model's
    partly = warped.clone()
    partly[1] = -1
    mixed = model(tokens, ego_motion=motion, warped_prev=partly).logits
    torch.testing.assert_close(mixed[1], plain[1])
    torch.testing.assert_close(mixed[0], changed[0])
    # a model without prev_frame_warp ignores them
    other = _gpt(warp=False)
    torch.testing.assert_close(other(tokens, ego_motion=motion, warped_prev=warped).logits, other(tokens, ego_motion=motion).logits)


def test_config_and_shapes_are_checked():
    with pytest.raises(ValueError, match="prev_frame_warp needs"):
        GPTConfig(vocab_size=8, tokens_h=2, tokens_w=2, max_frames=2, n_layer=1, n_head=1, n_embd=8, prev_frame_warp=True)
    model = _gpt()
    tokens = torch.zeros(1, 2, 2, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match="warped_prev must be int64"):
        model(tokens, warped_prev=torch.zeros(1, 2, 3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="warped_prev must be int64"):
        rollout(model, tokens, 1, ego_motion=torch.zeros(1, 3, 3), warped_prev=torch.zeros(1, 4, 2, 3, dtype=torch.int64))  # neither 2 nor 2 + 1 frames


@pytest.mark.parametrize("mode", ["cache", "no_cache", "token_by_token", "static"])
def test_rollout_with_a_warper_is_the_same_under_every_decoder_and_deterministic(mode):
    model = _gpt(seed=3)
    g = torch.Generator().manual_seed(2)
    context = torch.randint(16, (2, 2, 2, 3), generator=g)
    motion = torch.randn(2, 5, 3, generator=g)
    calls: list[torch.Tensor] = []

    def warper(tokens: torch.Tensor, motion_into_next: torch.Tensor) -> torch.Tensor:
        calls.append(tokens.clone())
        out = (tokens * 5 + 3) % 16  # any deterministic map of the previous frame
        out[motion_into_next[:, 0] < 0] = -1  # "unknown" for some rows
        return out

    kwargs = {"cache": {}, "no_cache": {"use_cache": False}, "token_by_token": {"speculative_block": 0},
              "static": {"static_decoder": StaticDecoder(model, batch=2, block=6, device="cpu")}}[mode]
    reference = rollout(model, context, 3, ego_motion=motion, warper=warper)
    n_calls = len(calls)
    assert n_calls == 3  # once per generated frame, on the frame before it
    torch.testing.assert_close(calls[1], reference[:, 0])
    again = rollout(model, context, 3, ego_motion=motion, warper=warper, **kwargs)
    assert torch.equal(again, reference)
    assert not torch.equal(reference, rollout(model, context, 3, ego_motion=motion))
    # entries the caller knows are used, not recomputed (here: the first future frame's, from the raw frame)
    given = torch.full((2, 5, 2, 3), -1, dtype=torch.int64)
    given[:, 2] = (context[:, 1] * 5 + 3) % 16
    given[motion[:, 2, 0] < 0, 2] = -1
    calls.clear()
    assert torch.equal(rollout(model, context, 3, ego_motion=motion, warped_prev=given, warper=warper), reference)
    # the first future frame's rows that the caller gave were not asked of the warper
    assert len(calls) == 3 - (1 if bool((given[:, 2] >= 0).flatten(1).all(dim=1).all()) else 0)
    # the context's entries only: the future frames' are unknown, as if given as -1
    context_warped = torch.randint(16, (2, 2, 2, 3), generator=g)
    padded = torch.cat([context_warped, torch.full((2, 3, 2, 3), -1, dtype=torch.int64)], dim=1)
    assert torch.equal(rollout(model, context, 3, ego_motion=motion, warped_prev=context_warped, warper=warper),
                       rollout(model, context, 3, ego_motion=motion, warped_prev=padded, warper=warper))


def test_generate_frame_drafts_from_the_warped_frame():
    """Speculative decoding with the warped frame as the draft gives the token-by-token frame."""
    model = _gpt(seed=5)
    g = torch.Generator().manual_seed(4)
    window = torch.randint(16, (3, 2, 2, 3), generator=g)
    motion = torch.randn(3, 3, 3, generator=g)
    warped = torch.randint(16, (3, 3, 2, 3), generator=g)
    slow = generate_frame(model, window, ego_motion=motion, warped_prev=warped, speculative_block=0)
    assert torch.equal(generate_frame(model, window, ego_motion=motion, warped_prev=warped), slow)
    assert torch.equal(generate_frame(model, window, ego_motion=motion, warped_prev=warped, use_cache=False), slow)


def _camera() -> tuple[CameraIntrinsics, object]:
    cam = PinholeCamera.nuscenes_cam_front(height=32, width=64)
    return CameraIntrinsics.from_matrix(cam.intrinsic_matrix, cam.width, cam.height), cam.extrinsics()


def _tokenizer() -> ConvTokenizer:
    torch.manual_seed(0)
    return ConvTokenizer(tokenizer_config("tiny", base_channels=8, patch_size=2, channel_mult=[2, 2, 4])).eval()


def test_warped_frame_tokens_encode_the_warped_previous_frame():
    tok = _tokenizer()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 32, 64, 3), dtype=np.uint8)
    motions = np.array([[np.nan] * 3, [1.0, 0.0, 0.0], [np.nan] * 3, [0.8, 0.1, 0.03]])
    camera = _camera()
    out = warped_frame_tokens(tok, frames, motions, camera)
    assert out.shape == (4, 4, 8) and out.dtype == np.int64
    assert (out[0] == -1).all() and (out[2] == -1).all()  # frame 0 and an unknown motion
    with torch.no_grad():
        for f in (1, 3):
            warped = warp_frames(frames[f - 1 : f], *camera, motions[f : f + 1]).frames
            expected = tok.encode(torch.from_numpy(warped).permute(0, 3, 1, 2).float() / 127.5 - 1).indices[0].numpy()
            np.testing.assert_array_equal(out[f], expected)
    assert (warped_frame_tokens(tok, frames, motions, None) == -1).all()  # no camera: nothing known


def test_ground_token_warper_decodes_warps_and_encodes_per_row():
    tok = _tokenizer()
    tokens = torch.randint(tok.codebook_size, (3, 4, 8), generator=torch.Generator().manual_seed(0))
    camera = _camera()
    warper = GroundTokenWarper(tok, [camera, None, camera])
    motion = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [float("nan"), 0.0, 0.0]])
    out = warper(tokens, motion)
    assert (out[1] == -1).all() and (out[2] == -1).all()  # no camera; an unknown motion
    with torch.no_grad():  # zero motion: the warp is the identity, so the result re-encodes the decoded frame
        decoded = tok.decode_indices(tokens[:1])
        frames = torch.round((decoded.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1
        assert torch.equal(out[0], tok.encode(frames).indices[0])
    with pytest.raises(ValueError, match="GroundTokenWarper"):
        warper(tokens[:2], motion[:2])


def test_training_shows_the_warped_frame_exactly_where_the_motion_is_known():
    from tests.settings import gpt_optim, wsd
    from world_model.gpt.lightning_module import GPTLightningModule

    module = GPTLightningModule(_gpt().config, gpt_optim(wsd(6, warmup_frac=1 / 3, decay_frac=1 / 3)))
    tokens = torch.randint(16, (2, 3, 2, 3))
    warped = torch.randint(16, (2, 3, 2, 3))
    motion = torch.randn(2, 3, 3)
    motion[:, 0] = float("nan")
    motion[1] = float("nan")  # a dropped window
    motion[0, 2, 1] = float("nan")  # one unknown motion
    shown = module._warped({"tokens": tokens, "warped_prev": warped, "ego_motion": motion}, motion)
    assert (shown[1] == -1).all() and (shown[0, 0] == -1).all() and (shown[0, 2] == -1).all()
    assert torch.equal(shown[0, 1], warped[0, 1])
    assert module._warped({"tokens": tokens, "ego_motion": motion}, motion) is None  # a store without warped tokens
