"""A tiny action model on random video tokens learns command-dependent trajectories by flow matching."""

from __future__ import annotations

import torch

from planner.action_model import ActionConditions, VideoActionModel, sample_trajectories, trajectory_to_model
from planner.flow_matching import RectifiedFlowPath, flow_matching_loss
from tests.settings import action_config, time_sampler
from world_model.gpt import GPTConfig

torch.set_num_threads(1)

RIGHT, LEFT, STRAIGHT = 0, 1, 2
STEPS = torch.arange(1, 7, dtype=torch.float32)  # waypoint index k = 1..6 (0.5 s apart)


def expert_trajectories(command: torch.Tensor) -> torch.Tensor:
    """(B, 6, 2) [m]: 8 m/s ahead, drifting 0.5 k^2 m left (LEFT), right (RIGHT) or not at all."""
    side = torch.where(command == LEFT, 1.0, torch.where(command == RIGHT, -1.0, 0.0))[:, None]  # (B, 1)
    lateral = side * 0.5 * STEPS**2  # (B, 6): +-18 m at 3 s
    return torch.stack([4.0 * STEPS.expand_as(lateral), lateral], dim=-1)


def test_tiny_model_learns_to_turn_on_command():
    torch.manual_seed(0)
    gpt = GPTConfig(vocab_size=16, tokens_h=2, tokens_w=2, max_frames=2, n_layer=2, n_head=2, n_embd=64)
    model = VideoActionModel(gpt, action_config(expert_width_ratio=0.5))
    model.world_model.requires_grad_(False).eval()  # frozen world model
    optimizer = torch.optim.AdamW(model.expert.parameters(), lr=3e-3, weight_decay=0.0)
    path, times = RectifiedFlowPath(), time_sampler("beta")
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(200):
        command = torch.randint(0, 3, (64,), generator=g)
        with torch.no_grad():
            video = model.encode_video(torch.randint(0, 16, (64, 2, 2, 2), generator=g))  # noise frames
        x1 = trajectory_to_model(expert_trajectories(command), model.config)[:, None]  # (B, 1, K, 2)
        # The training step: draw t and noise, take the path sample, regress its velocity.
        t, noise = times.sample((64, 1), g), torch.randn(x1.shape, generator=g)
        sample = path.sample(x1, noise, t)
        loss = flow_matching_loss(model.velocity(video, sample.x_t, sample.t, ActionConditions(command)), sample.velocity)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.15 * first, (first, last)

    model.eval()
    command = torch.tensor([RIGHT, LEFT, STRAIGHT]).repeat(4)
    video = model.encode_video(torch.randint(0, 16, (12, 2, 2, 2), generator=g))
    plans = sample_trajectories(model, video, ActionConditions(command), 16, 10, "euler", g)  # (12, 16, 6, 2) [m]
    lateral = {c: plans[command == c][..., 1].mean(dim=(0, 1)) for c in (RIGHT, LEFT, STRAIGHT)}  # (6,) mean y per waypoint
    print({c: [round(v, 1) for v in y.tolist()] for c, y in lateral.items()})
    left, right, straight = lateral[LEFT], lateral[RIGHT], lateral[STRAIGHT]
    # Margins hold for other seeds too (checked with 4 seeds: final |y| 16.7-19.4 m, straight |y| <= 3.5 m).
    assert left[5] > 10.0 and left[5] > left[3] > left[0]  # curves left, more and more (target 18 m)
    assert right[5] < -10.0 and right[5] < right[3] < right[0]
    assert straight.abs().max() < 5.0
    forward = plans[..., -1, 0].mean()
    assert 18.0 < forward < 30.0  # 24 m ahead at 3 s
