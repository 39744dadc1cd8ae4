"""A tiny planner pipeline built once per test session: synthetic clips -> tokenizer -> tokens ->
world model -> `foresight train planner`, all at 32x64 pixels (4x8 tokens) so it takes seconds.

The tokenizer and the world model are randomly initialised (their quality is not what these tests
check); the planner is trained for a handful of steps through the real CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from foresight.cli import main, run_subcommand
from tests.settings import ONE_SAMPLE, action_config, time_sampler

IMAGE_H, IMAGE_W = 32, 64
TRAIN_STEPS = 4


@dataclass(frozen=True)
class TinyPipeline:
    clips: Path  # training clip store (synthetic, seeds 1000+)
    eval_clips: Path  # held-out synthetic episodes (seed 0)
    tokenizer: Path
    tokens: Path
    world_model: Path


def train_args(p: TinyPipeline, out: Path, *extra: str) -> list[str]:
    """`foresight train planner ...` arguments for a few-step CPU run on the tiny pipeline."""
    return [
        "train", "planner", f"world_model={p.world_model}", f"tokenizer={p.tokenizer}", f"clips={p.clips}", f"tokens={p.tokens}",
        f"out={out}", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.progress_bar=false", f"planner.train.max_steps={TRAIN_STEPS}", "planner.train.batch_size=4",
        "planner.train.val_every_n_steps=2", "planner.train.plot_every_n_steps=2", "planner.train.checkpoint_every_n_steps=2",
        "planner.train.log_every_n_steps=1", "planner.train.val_fraction=0.34", "planner.train.val_max_windows=8",
        "planner.train.plot_windows=2", "planner.flow.samples_per_window=2", "planner.flow.eval_samples=3", "planner.flow.eval_steps=2",
        "planner.ego_mlp.steps=30", "planner.ego_mlp.hidden_width=32", "trainer.precision=32-true", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> TinyPipeline:
    from world_model.artifact import WorldModelMeta, export_world_model
    from world_model.gpt import GPT, GPTConfig
    from world_model.tokenizer import export_tokenizer, load_image_tokenizer
    from world_model.tokenizer.model import ConvTokenizer, tokenizer_config
    from world_model.tokens.tokenize import TokenizeConfig, run_tokenize

    root = tmp_path_factory.mktemp("planner_pipeline")
    size = [f"height={IMAGE_H}", f"width={IMAGE_W}"]
    run_subcommand("data", "synth", [f"out={root / 'clips'}", "episodes=4", "seed=1000", "suites=[nominal]", *size])
    run_subcommand("data", "synth", [f"out={root / 'eval_clips'}", "episodes=2", "seed=0", "suites=[nominal]", *size])
    torch.manual_seed(0)
    tokenizer = ConvTokenizer(tokenizer_config("tiny", base_channels=8)).eval()
    export_tokenizer(tokenizer, root / "tokenizer")
    run_tokenize(TokenizeConfig.default(root / "clips", root / "tokenizer", root / "tokens", num_workers=0))
    grid = (IMAGE_H // tokenizer.downsample_factor, IMAGE_W // tokenizer.downsample_factor)
    gpt = GPT(GPTConfig(vocab_size=tokenizer.codebook_size, tokens_h=grid[0], tokens_w=grid[1], max_frames=3, n_layer=2, n_head=2, n_embd=32))
    identity = load_image_tokenizer(root / "tokenizer").identity
    export_world_model(gpt.eval(), root / "world_model", WorldModelMeta(fps=2.0, tokenizer=identity))
    return TinyPipeline(root / "clips", root / "eval_clips", root / "tokenizer", root / "tokens", root / "world_model")


@pytest.fixture(scope="session")
def trained_planner(tiny_pipeline, tmp_path_factory) -> Path:
    """OUT of a finished few-step `foresight train planner` run (OUT/vam is the exported planner)."""
    out = tmp_path_factory.mktemp("planner_run")
    assert main(train_args(tiny_pipeline, out)) == 0
    return out


def train_expert_straight(model, draw_tokens, steps: int, speed_span_mps: float, seed: int = 0, blind_speed_mps: float = 6.0):
    """Teach an action model's expert to drive straight on at the ego's current speed (2 to
    2 + speed_span_mps m/s), or, when it sees no ego status, at blind_speed_mps, whatever the video
    (tokens (32, T, h, w) from draw_tokens(generator), drawn only when the model watches video) and
    the command. Plans land in a plausible range. All draws come from one generator seeded `seed`."""
    from planner.action_model import ActionConditions, ego_status_features, trajectory_to_model
    from planner.flow_matching import RectifiedFlowPath, flow_matching_loss

    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.expert.parameters(), lr=3e-3, weight_decay=0.0)
    path, times = RectifiedFlowPath(), time_sampler()
    k = torch.arange(1, model.config.num_waypoints + 1, dtype=torch.float32)
    history_times = torch.tensor([-1.5, -1.0, -0.5, 0.0]).expand(32, 4)
    sees_ego = model.config.ego_status != "off"
    for _ in range(steps):
        speed = 2.0 + speed_span_mps * torch.rand(32, generator=g) if sees_ego else torch.full((32,), blind_speed_mps)
        ego = None
        if sees_ego:
            history = torch.stack([speed[:, None] * history_times, torch.zeros(32, 4), torch.zeros(32, 4)], dim=-1)
            ego = ego_status_features(speed, torch.zeros(32), torch.zeros(32), history_times, history, model.config)
        conditions = ActionConditions(torch.randint(0, 3, (32,), generator=g), ego)
        x1 = trajectory_to_model(torch.stack([model.config.waypoint_dt_s * speed[:, None] * k, 0 * k.expand(32, -1)], dim=-1), model.config)[:, None]
        with torch.no_grad():
            video = model.context(draw_tokens(g)) if model.world_model is not None else None
        t, noise = times.sample((32, 1), g), torch.randn(x1.shape, generator=g)
        sample = path.sample(x1, noise, t)
        loss = flow_matching_loss(model.velocity(video, sample.x_t, sample.t, conditions), sample.velocity)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def train_to_keep_speed(model, token_windows: torch.Tensor, steps: int = 300, seed: int = 0):
    """Teach an action model's expert to drive straight on at the ego's current speed (2 to 12 m/s)
    whatever the video (windows drawn from token_windows (N, T, h, w)) and command, so its plans are valid."""
    return train_expert_straight(
        model, lambda g: token_windows[torch.randint(0, len(token_windows), (32,), generator=g)], steps, speed_span_mps=10.0, seed=seed,
    )


@pytest.fixture(scope="session")
def speed_keeping_planner(tiny_pipeline, tmp_path_factory) -> Path:
    """An exported planner (observed video, ego-status token) that keeps its speed, naming the
    pipeline's tokenizer by absolute path, with an ego MLP beside it; valid plans in closed loop."""
    from planner.action_model import VideoActionModel, export_vam
    from planner.datamodule import PlannerWindowDataset, PlannerWindowSpec
    from planner.ego_mlp import EgoMLPConfig, export_ego_mlp, train_ego_mlp
    from world_model.artifact import load_world_model
    from world_model.tokenizer import load_image_tokenizer

    out = tmp_path_factory.mktemp("speed_keeping") / "vam"
    torch.manual_seed(0)
    gpt = load_world_model(tiny_pipeline.world_model).model
    config = action_config(ego_status="token", expert_width_ratio=0.5, position_scale_m=20.0)
    windows = PlannerWindowDataset(tiny_pipeline.clips, tiny_pipeline.tokens, PlannerWindowSpec(n_observed_frames=gpt.config.max_frames))
    token_windows = torch.stack([windows[i].tokens for i in range(len(windows))])
    model = train_to_keep_speed(VideoActionModel.from_world_model(gpt, config), token_windows)
    identity = load_image_tokenizer(tiny_pipeline.tokenizer).identity
    export_vam(model, out, 0.5, ONE_SAMPLE, tokenizer=identity, tokenizer_path=str(tiny_pipeline.tokenizer.resolve()))
    export_ego_mlp(train_ego_mlp(windows, EgoMLPConfig(features=config, hidden_width=64), steps=400, batch_size=64, lr=3e-3), out)
    return out
