"""VAMPlanner in closed loop: valid plans, incremental frame encoding, modes, checkpoints, timings."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contract import EpisodeInfo, Observation, validate_plan
from data.image import resize_rgb
from planner.action_model import VideoActionModel, ego_status_features, export_vam
from planner.vam import VAMPlanner, benchmark_planner, synthetic_observations
from tests.planner.conftest import train_expert_straight
from tests.settings import ONE_SAMPLE, action_config, vam_config
from world_model.gpt import GPTConfig

torch.set_num_threads(1)

GPT_CONFIG = GPTConfig(vocab_size=16, tokens_h=2, tokens_w=4, max_frames=4, n_layer=2, n_head=2, n_embd=32)


class PatchMeanTokenizer(torch.nn.Module):
    """Stand-in image tokenizer: each f x f patch's mean intensity quantised to `vocab` levels."""

    def __init__(self, vocab_size: int, downsample_factor: int) -> None:
        super().__init__()
        self.vocab_size, self.downsample_factor = vocab_size, downsample_factor
        self.n_encoded = 0

    def encode(self, images: torch.Tensor) -> SimpleNamespace:
        self.n_encoded += images.shape[0]
        means = F.avg_pool2d(images.mean(dim=1, keepdim=True), self.downsample_factor)[:, 0]  # (B, h, w) in [-1, 1]
        return SimpleNamespace(indices=((means + 1) / 2 * self.vocab_size).long().clamp(0, self.vocab_size - 1))


def train_straight(model: VideoActionModel, steps: int = 150) -> VideoActionModel:
    """Teach a tiny model to keep driving straight: at 6 m/s, or at the ego's speed (2 to 10 m/s) when
    it sees ego status (then it is the AD-MLP-like blind model), on random 4-frame videos."""
    return train_expert_straight(model, lambda g: torch.randint(0, 16, (32, 4, 2, 4), generator=g), steps, speed_span_mps=8.0)


@pytest.fixture(scope="module")
def trained_model() -> VideoActionModel:
    torch.manual_seed(0)
    return train_straight(VideoActionModel(GPT_CONFIG, action_config(expert_width_ratio=0.5)))


def stream(n: int = 5, **kwargs) -> list[Observation]:
    return synthetic_observations(n, height=24, width=48, seed=1, **kwargs)


def test_plans_are_valid_and_only_new_frames_are_encoded(trained_model):
    tokenizer = PatchMeanTokenizer(16, 4)
    planner = VAMPlanner(trained_model, tokenizer, vam_config(seed=3))
    planner.reset(EpisodeInfo("stream"))
    plans, encoded = [], []
    for observation in stream():
        plan = planner.plan(observation)
        assert validate_plan(plan, expected_k=6, expected_dt_s=0.5) is None
        assert plan.waypoints.shape == (6, 2) and plan.extras["n_observed_frames"] == 4 and plan.extras["n_padded_frames"] == 0
        assert all(plan.extras[key] >= 0.0 for key in ("encode_ms", "context_ms", "flow_ms", "total_ms"))
        plans.append(plan.waypoints)
        encoded.append(tokenizer.n_encoded)
    assert encoded == [4, 5, 6, 7, 8]  # the whole window once, then one new frame per call
    assert 10.0 < float(np.mean([p[-1, 0] for p in plans])) < 26.0  # about 18 m ahead at 3 s
    # A reset replays the episode exactly; another seed draws other noise.
    planner.reset(EpisodeInfo("again"))
    assert all(np.array_equal(planner.plan(o).waypoints, p) for o, p in zip(stream(), plans))
    other = VAMPlanner(trained_model, tokenizer, vam_config(seed=4))
    assert not np.array_equal(other.plan(stream()[0]).waypoints, plans[0])


def test_frames_are_taken_on_the_model_frame_grid_and_padded(trained_model):
    tokenizer = PatchMeanTokenizer(16, 4)
    planner = VAMPlanner(trained_model, tokenizer, vam_config())
    # 10 Hz frames over 1 s: only t = 0, -0.5, -1.0 s are on the 2 Hz grid; the window is padded to 4.
    (fast,) = synthetic_observations(1, height=24, width=48, n_frames=11, period_s=0.1)
    seen = []
    original = planner.model.encode_video
    planner.model.encode_video = lambda tokens: seen.append(tokens) or original(tokens)
    try:
        plan = planner.plan(fast)
        assert validate_plan(plan, 6, 0.5) is None and plan.extras["n_padded_frames"] == 1
    finally:
        planner.model.encode_video = original
    assert tokenizer.n_encoded == 3 and seen[0].shape == (1, 4, 2, 4)
    assert torch.equal(seen[0][0, 0], seen[0][0, 1])  # the oldest frame repeated
    resized = np.stack([resize_rgb(fast.frames_rgb[i], 8, 16) for i in (0, 5, 10)])  # no crop, to the tokenizer's input size
    expected = PatchMeanTokenizer(16, 4).encode(torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 127.5 - 1.0).indices
    assert torch.equal(seen[0][0, 1:], expected)


def test_imagine_then_act_mode_runs():
    torch.manual_seed(1)
    model = VideoActionModel(GPT_CONFIG, action_config(expert_width_ratio=0.5, video_mode="imagine", n_imagined_frames=2, ego_status="token"))
    planner = VAMPlanner(model, PatchMeanTokenizer(16, 4), vam_config())
    for observation in stream(3):
        plan = planner.plan(observation)
        assert plan.waypoints.shape == (6, 2) and np.isfinite(plan.waypoints).all()
        assert plan.extras["n_observed_frames"] == 2 and plan.extras["imagined_tokens"].shape == (2, 2, 4)


def test_no_video_planner_needs_no_tokenizer_and_loads_from_a_checkpoint(tmp_path):
    torch.manual_seed(2)
    model = train_straight(VideoActionModel(GPT_CONFIG, action_config(expert_width_ratio=0.5, video_mode="none", ego_status="add")), steps=300)
    export_vam(model, tmp_path / "blind", 0.5, ONE_SAMPLE)
    in_memory = VAMPlanner(model, None, vam_config())
    loaded = VAMPlanner.from_checkpoint(tmp_path / "blind")
    for observation in stream(3):
        a, b = in_memory.plan(observation), loaded.plan(observation)
        assert validate_plan(a, 6, 0.5) is None and a.extras["encode_ms"] == 0.0
        assert 14.0 < a.waypoints[-1, 0] < 34.0  # the synthetic ego drives at 8 m/s: about 24 m at 3 s
        np.testing.assert_array_equal(a.waypoints, b.waypoints)
    seeing = VideoActionModel(GPT_CONFIG, action_config(expert_width_ratio=0.5))
    with pytest.raises(ValueError, match="tokenizer"):
        VAMPlanner(seeing, None, vam_config())
    export_vam(seeing, tmp_path / "seeing", 0.5, ONE_SAMPLE)
    with pytest.raises(ValueError, match="names no tokenizer"):
        VAMPlanner.from_checkpoint(tmp_path / "seeing")


def test_benchmark_planner_times_both_step_counts_on_the_cached_video():
    """The timings themselves are a benchmark (`foresight bench planner`, ratio_10step_vs_1step in
    benchmarks/README.md), not asserted here: a loaded CI machine made a bound on them flaky."""
    torch.manual_seed(3)
    # A world model big enough that its pass over the window outweighs one flow step, as at real sizes.
    gpt = GPTConfig(vocab_size=64, tokens_h=8, tokens_w=16, max_frames=8, n_layer=2, n_head=4, n_embd=128)
    model = VideoActionModel(gpt, action_config(expert_width_ratio=0.25))
    planner = VAMPlanner(model, PatchMeanTokenizer(64, 8), vam_config())
    result = benchmark_planner(planner, synthetic_observations(8, height=64, width=128, seed=0), warmup=2, rounds=2)
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()})
    assert result["n_timed_calls"] == 12 and result["device"] == "cpu"
    assert all(result[k] > 0 for k in ("encode_ms", "context_ms", "flow_ms", "flow_ms_1step", "total_ms", "total_ms_1step"))
    assert result["ratio_10step_vs_1step"] == result["total_ms"] / result["total_ms_1step"]


def test_ego_status_and_plan_helpers_stay_on_the_inputs_device():
    """Every tensor these helpers make lives on the inputs' device (a GPU run once failed here:
    the history query times were built on the CPU beside CUDA inputs). The `meta` device stands
    in for CUDA: any CPU tensor mixed in raises."""
    from planner.inference import aggregate_samples
    from planner.open_loop import constant_velocity_xy

    meta = torch.device("meta")
    b, p = 2, 5
    features = ego_status_features(
        torch.zeros(b, device=meta), torch.zeros(b, device=meta), torch.zeros(b, device=meta),
        torch.zeros(b, p, device=meta), torch.zeros(b, p, 3, device=meta), action_config(),
    )
    assert features.device == meta and features.shape == (b, action_config().ego_status_dim)
    assert constant_velocity_xy(torch.zeros(b, device=meta), 6, 0.5).device == meta
    assert aggregate_samples(torch.zeros(b, 4, 6, 2, device=meta), "medoid").device == meta


@pytest.mark.parametrize("ego_status", ["token", "add"])
def test_a_batch_plans_every_episode_exactly_as_it_is_planned_alone(ego_status):
    """The batched closed loop repeats the unbatched one bit for bit (fp32, CPU): one episode's
    ego status is a single row, which torch's CPU linear would sum in another order than a batch's."""
    torch.manual_seed(0)
    model = VideoActionModel(GPT_CONFIG, action_config(ego_status=ego_status, expert_width_ratio=0.5)).eval()
    lead = VAMPlanner(model, PatchMeanTokenizer(16, 4), vam_config(n_samples=4, aggregate="mean", seed=3))
    observations = [synthetic_observations(1, height=24, width=48, seed=s, speed_mps=3.0 + 2 * s)[0] for s in range(5)]
    planners = [lead, *[lead.replica() for _ in observations[1:]]]
    for p in planners:
        p.reset(EpisodeInfo("batched"))
    batched = VAMPlanner.plan_batch(planners, observations)
    for observation, plan in zip(observations, batched):
        alone = lead.replica()
        alone.reset(EpisodeInfo("alone"))
        assert np.array_equal(alone.plan(observation).waypoints, plan.waypoints)


@pytest.mark.parametrize("autocast", [False, True])
def test_a_lone_row_goes_through_linear_as_a_row_of_a_batch(autocast):
    from planner.action_model.batch_invariance import batch_invariant_linear

    torch.manual_seed(0)
    layer = torch.nn.Linear(9, 64)
    rows = torch.randn(40, 9)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        batch = batch_invariant_linear(layer, rows)
        assert torch.allclose(batch.float(), layer(rows).float(), rtol=1e-2 if autocast else 1e-5, atol=1e-2 if autocast else 1e-6)
        for n in (1, 2, 3, 4, 5, 15, 16):  # every number of rows (CPUs differ in which ones torch's own linear sums alike)
            assert torch.equal(batch_invariant_linear(layer, rows[:n]), batch[:n])
        for i in range(6):
            assert torch.equal(batch_invariant_linear(layer, rows[i : i + 1]), batch[i : i + 1])
            assert torch.equal(batch_invariant_linear(layer, rows[i]), batch[i])  # (F,) -> (F_out,)
