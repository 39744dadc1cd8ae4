"""A world model trained by `train_world_model` keeps the scene moving over a long rollout.

The data: token frames where a road-marking-like dash crosses a static background, moving 1 or 2
rows down per frame. A 24-frame rollout from an 8-frame context (3 times the model's 4-frame
window, so the window must slide) must keep moving the dash at the speed seen in the context,
every frame: a generator that stops sliding (the reference's defect) repeats one prediction.
"""

from __future__ import annotations

import pytest
import torch

from tests.world_model.conftest import GRID_HW, dash_clip, dash_rows, dash_store, world_model_config
from world_model.artifact import load_world_model
from world_model.gpt.generate import WindowEvent, rollout
from world_model.train import train_world_model

CONTEXT, FUTURE = 8, 24


def test_rollout_of_24_frames_keeps_the_motion_of_the_context(tmp_path):
    tokens = dash_store(tmp_path / "tokens", n_clips=48, n_frames=12, fps=5.0)
    config = world_model_config([
        f"tokens={tokens}", f"out={tmp_path / 'run'}", "world_model.max_steps=150", "world_model.batch_size=16",
        "world_model.lr=3e-3", "world_model.checkpoint_every_n_steps=150", "world_model.val_every_n_steps=150",
        "world_model.model.n_embd=64", "world_model.schedule.warmup_frac=0.05", "trainer.precision=32-true",
    ])
    summary = train_world_model(config).summary
    assert summary["steps"] == 150 and summary["fps"] == 5.0
    model = load_world_model(tmp_path / "run").model
    assert model.config.max_frames == 4 and model.config.prev_frame_token_input

    starts, speeds = [0, 3, 5, 2], [1, 2, 1, 2]
    context = torch.stack([torch.from_numpy(dash_clip(CONTEXT, s, v).astype("int64")) for s, v in zip(starts, speeds)])  # (4, 8, h, w)
    events: list[WindowEvent] = []
    future = rollout(model, context, FUTURE, on_window=events.append)  # (4, 24, h, w) greedy
    assert future.shape == (4, FUTURE, *GRID_HW)
    assert all(e.num_frames == 3 for e in events) and [e.first_frame for e in events] == list(range(CONTEXT - 3, CONTEXT - 3 + FUTURE))

    # Consecutive predicted frames differ: the rollout never stalls.
    frames = torch.cat([context[:, -1:], future], dim=1)
    assert bool((frames[:, 1:] != frames[:, :-1]).flatten(2).any(-1).all())
    # The dash advances by the context's speed at every one of the 24 frames.
    last_row = dash_rows(context)[:, -1]  # (4,)
    steps = torch.arange(1, FUTURE + 1)
    expected = (last_row[:, None] + torch.tensor(speeds)[:, None] * steps[None]) % GRID_HW[0]  # (4, 24)
    assert torch.equal(dash_rows(future), expected)
    # Exactly one dash row per frame, and the background elsewhere stays the background.
    truth = torch.stack([torch.from_numpy(dash_clip(CONTEXT + FUTURE, s, v).astype("int64"))[CONTEXT:] for s, v in zip(starts, speeds)])
    assert torch.equal(future, truth)


def test_previous_frame_token_of_the_predicted_position_keeps_the_model_causal():
    from world_model.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    config = GPTConfig(vocab_size=16, tokens_h=2, tokens_w=3, max_frames=3, n_layer=1, n_head=2, n_embd=32,
                       prev_frame_token_input=True, prev_frame_token_position="target")
    model = GPT(config).eval()
    tokens = torch.randint(0, 16, (1, 3, 2, 3), generator=torch.Generator().manual_seed(1))
    edited = tokens.clone()
    edited[0, 0, 1, 1] = (edited[0, 0, 1, 1] + 1) % 16  # frame 0, position 4
    changed = (model._embed(edited.flatten(1), 0) - model._embed(tokens.flatten(1), 0)).abs().amax(dim=-1)[0] > 0
    # The token itself, and the input that predicts the same place one frame later (position 4 + 6 - 1).
    assert changed.nonzero().squeeze(-1).tolist() == [4, 9]
    logits, logits_edited = model(tokens).logits, model(edited).logits
    torch.testing.assert_close(logits_edited[:, :4], logits[:, :4], rtol=0, atol=0)
    with pytest.raises(ValueError, match="prev_frame_token_position"):
        GPTConfig(**{**config.__dict__, "prev_frame_token_position": "next"})
