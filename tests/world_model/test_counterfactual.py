"""Counterfactual rollouts: manoeuvre motions are exact arcs and the rollouts follow the motions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from world_model.counterfactual import MANEUVERS, TURN_RADIUS_M, arc_motion, counterfactual_rollouts, maneuver_motions
from world_model.gpt.config import GPTConfig
from world_model.gpt.model import GPT


def test_arc_motion_lands_on_the_circle():
    # A quarter circle to the left of radius 10 m: 10 m forward, 10 m left, +90 degrees.
    np.testing.assert_allclose(arc_motion(math.pi * 5.0, 0.1), [10.0, 10.0, math.pi / 2], atol=1e-9)
    np.testing.assert_allclose(arc_motion(3.0, 0.0), [3.0, 0.0, 0.0])


def test_maneuvers_keep_the_speed_turn_and_stop():
    last = np.array([2.0, 0.0, 0.0])  # 2 m per 0.2 s step: 10 m/s, straight
    keep = maneuver_motions("keep_lane", last, 3, 0.2)
    np.testing.assert_allclose(keep, np.tile(last, (3, 1)), atol=1e-6)
    left, right = maneuver_motions("turn_left", last, 3, 0.2), maneuver_motions("turn_right", last, 3, 0.2)
    assert np.allclose(left[:, 2], 2.0 / TURN_RADIUS_M, atol=1e-6) and np.allclose(right[:, 2], -2.0 / TURN_RADIUS_M, atol=1e-6)
    assert (left[:, 1] > 0).all() and np.allclose(left[:, 1], -right[:, 1])
    brake = maneuver_motions("brake", last, 20, 0.2)  # 4 m/s^2 from 10 m/s: stopped after 2.5 s = 12.5 m
    assert brake[:, 0].sum() == pytest.approx(12.5, abs=1e-5) and (np.diff(brake[:, 0]) <= 1e-9).all() and brake[-1, 0] == 0.0
    with pytest.raises(ValueError, match="unknown manoeuvre"):
        maneuver_motions("drift", last, 3, 0.2)
    with pytest.raises(ValueError, match="finite"):
        maneuver_motions("brake", np.array([np.nan, 0, 0]), 3, 0.2)


def _model(conditioned: bool) -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=16, tokens_h=2, tokens_w=3, max_frames=4, n_layer=1, n_head=2, n_embd=32, ego_motion_input=conditioned,
                       prev_frame_token_input=True, prev_frame_token_position="target")
    model = GPT(config).eval()
    with torch.no_grad():  # a visible motion projection so that motions change the greedy tokens
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model


def test_rollouts_are_deterministic_and_depend_on_the_manoeuvre():
    model = _model(True)
    context = torch.randint(0, 16, (1, 3, 2, 3), generator=torch.Generator().manual_seed(1))
    motion = torch.tensor([[float("nan")] * 3, [2.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    tokens, future = counterfactual_rollouts(model, context, motion, 2, 0.2)
    again, _ = counterfactual_rollouts(model, context, motion, 2, 0.2)
    assert tokens.shape == (len(MANEUVERS), 2, 2, 3) and future.shape == (len(MANEUVERS), 2, 3)
    assert torch.equal(tokens, again)
    assert len({tuple(t.flatten().tolist()) for t in tokens}) > 1  # the manoeuvres do not all look alike
    with pytest.raises(ValueError, match="ego-motion-conditioned"):
        counterfactual_rollouts(_model(False), context, motion, 2, 0.2)


def test_strip_has_a_row_per_manoeuvre(tmp_path):
    import cv2

    from world_model.counterfactual import save_counterfactual_strip

    rng = np.random.default_rng(0)
    context = rng.integers(0, 255, (16, 32, 3), dtype=np.uint8)
    frames = {m: rng.integers(0, 255, (2, 16, 32, 3), dtype=np.uint8) for m in MANEUVERS}
    motions = {m: maneuver_motions(m, np.array([2.0, 0.0, 0.0]), 2, 0.2) for m in MANEUVERS}
    out = save_counterfactual_strip(context, frames, motions, 0.2, tmp_path / "cf.png")
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > image.shape[1] / 3  # four rows of three cells
