"""Action model: the joint-attention mask, cached video keys/values == the joint pass, the video
modes, ego-status features, checkpoints, and the reference expert sizes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from contract import Observation
from planner.action_model import (
    ActionConditions,
    ActionExpert,
    ActionModelConfig,
    VideoActionModel,
    conditions_from_batch,
    conditions_from_observation,
    export_vam,
    joint_forward,
    load_vam,
    past_poses_at,
)
from tests.settings import ONE_SAMPLE, REFERENCE_ACTION, action_config, planner_batch
from world_model.gpt import GPT, GPTConfig, gpt_config, rollout

torch.set_num_threads(1)

GPT_CONFIG = GPTConfig(vocab_size=24, tokens_h=2, tokens_w=3, max_frames=4, n_layer=2, n_head=2, n_embd=32)


def make_model(seed: int = 0, gpt: GPTConfig = GPT_CONFIG, **action) -> VideoActionModel:
    torch.manual_seed(seed)
    return VideoActionModel(gpt, action_config(expert_width_ratio=0.5, **action)).double().eval()


def inputs(model: VideoActionModel, seed: int, batch: int = 2, n_samples: int = 1):
    g = torch.Generator().manual_seed(seed)
    c = model.config
    x_t = torch.randn(batch, n_samples, c.num_waypoints, c.trajectory_dim, generator=g, dtype=torch.float64)
    t = torch.rand(batch, n_samples, generator=g, dtype=torch.float64)
    ego = torch.randn(batch, c.ego_status_dim, generator=g) if c.ego_status != "off" else None
    return x_t, t, ActionConditions(torch.randint(0, 3, (batch,), generator=g), ego)


def video(seed: int, batch: int = 2, n_frames: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, GPT_CONFIG.vocab_size, (batch, n_frames, GPT_CONFIG.tokens_h, GPT_CONFIG.tokens_w), generator=g)


def test_video_stream_never_sees_the_actions():
    model = make_model(ego_status="token")
    tokens = video(0)
    outputs = []
    for seed in (1, 2):
        x_t, t, conditions = inputs(model, seed)
        outputs.append(joint_forward(model.world_model, model.expert, tokens, x_t[:, 0], t[:, 0], conditions))
    assert torch.equal(outputs[0].video_logits, outputs[1].video_logits)
    assert torch.equal(outputs[0].video_hidden, outputs[1].video_hidden)
    assert not torch.allclose(outputs[0].velocity, outputs[1].velocity)
    # ... and the video half of the joint pass is exactly the world model's own forward pass.
    torch.testing.assert_close(outputs[0].video_logits, GPT.forward(model.world_model, tokens).logits, rtol=1e-10, atol=1e-10)


def test_actions_see_video_frames_up_to_the_current_one_only():
    model = make_model()
    tokens = video(3)
    x_t, t, conditions = inputs(model, 4)
    n_visible = 2  # current frame t = 1; frames 2 and 3 lie after it

    def velocity(window):
        return joint_forward(model.world_model, model.expert, window, x_t[:, 0], t[:, 0], conditions, n_visible_frames=n_visible).velocity

    reference = velocity(tokens)
    for frame in range(4):
        changed = tokens.clone()
        changed[:, frame] = (changed[:, frame] + 1) % GPT_CONFIG.vocab_size
        if frame < n_visible:
            assert (velocity(changed) - reference).abs().max() > 1e-6, f"frame {frame} <= t must matter"
        else:
            torch.testing.assert_close(velocity(changed), reference, rtol=0, atol=1e-14)


@pytest.mark.parametrize("action", [{}, {"ego_status": "add"}, {"ego_status": "token", "predict_yaw": True}])
def test_cached_video_flow_step_equals_the_joint_forward_pass(action):
    model = make_model(**action)
    tokens = video(5)
    x_t, t, conditions = inputs(model, 6)
    context = model.encode_video(tokens)  # once per observation
    for n_visible in (4, 2):
        joint = joint_forward(model.world_model, model.expert, tokens, x_t[:, 0], t[:, 0], conditions, n_visible_frames=n_visible)
        cached = model.velocity(context.first_frames(n_visible), x_t, t, conditions)[:, 0]
        torch.testing.assert_close(cached, joint.velocity, rtol=1e-10, atol=1e-12)


def test_samples_share_the_video_context_without_seeing_each_other():
    model = make_model(ego_status="token")
    context = model.encode_video(video(7))
    x_t, t, conditions = inputs(model, 8, n_samples=3)
    together = model.velocity(context, x_t, t, conditions)  # (B, 3, K, D)
    for s in range(3):
        alone = model.velocity(context, x_t[:, s : s + 1], t[:, s : s + 1], conditions)
        torch.testing.assert_close(together[:, s : s + 1], alone, rtol=1e-10, atol=1e-12)


def test_imagine_mode_attends_to_a_greedy_rollout_or_teacher_forced_frames():
    model = make_model(video_mode="imagine", n_imagined_frames=2)
    observed = video(9, n_frames=5)
    assert model.n_observed_frames == 2
    window = model.video_tokens(observed)
    expected_context = observed[:, -2:]
    assert torch.equal(window, torch.cat([expected_context, rollout(model.world_model, expected_context, 2)], dim=1))
    future = video(10, n_frames=3)
    assert torch.equal(model.video_tokens(observed, future), torch.cat([expected_context, future[:, :2]], dim=1))
    context = model.context(observed)
    assert context.n_frames == 4 and context.keys[0].shape == (2, 2, 24, 16)
    with pytest.raises(ValueError, match="future tokens"):
        model.video_tokens(observed, future[:, :1])


def test_fewer_observed_frames_attend_to_the_newest_only():
    model = make_model(observed_frames=2)
    observed = video(11, n_frames=4)
    assert model.n_observed_frames == 2 and torch.equal(model.video_tokens(observed), observed[:, -2:])
    assert model.context(observed).n_frames == 2
    assert make_model(observed_frames=9).n_observed_frames == 4  # at most the world model's context
    assert make_model(video_mode="imagine", n_imagined_frames=1, observed_frames=2).video_tokens(observed).shape[1] == 3
    with pytest.raises(ValueError, match="observed_frames"):
        action_config(observed_frames=-1)


def test_no_video_mode_has_no_world_model_and_the_same_expert_weights():
    blind = make_model(video_mode="none", ego_status="add")
    seeing = make_model(ego_status="add")
    assert blind.world_model is None
    assert {k: v.shape for k, v in blind.expert.state_dict().items()} == {k: v.shape for k, v in seeing.expert.state_dict().items()}
    x_t, t, conditions = inputs(blind, 11)
    assert blind.velocity(None, x_t, t, conditions).shape == x_t.shape
    with pytest.raises(ValueError, match="video context"):
        blind.velocity(seeing.encode_video(video(0)), x_t, t, conditions)
    with pytest.raises(ValueError, match="ego_status"):
        action_config(video_mode="none")


def test_past_poses_are_interpolated_and_extrapolated_at_the_current_speed():
    times = torch.tensor([[-1.0, -0.5, 0.0]], dtype=torch.float64)
    poses = torch.tensor([[[-8.0, -1.0, 0.2], [-4.0, -0.5, 0.1], [0.0, 0.0, 0.0]]], dtype=torch.float64)
    query = torch.tensor([-0.25, -1.0, -1.5], dtype=torch.float64)
    out = past_poses_at(times, poses, query, torch.tensor([8.0], dtype=torch.float64))[0]
    torch.testing.assert_close(out[0], torch.tensor([-2.0, -0.25, 0.05], dtype=torch.float64))
    torch.testing.assert_close(out[1], poses[0, 0])
    back = 0.5 * 8.0  # 0.5 s before the oldest pose, backwards along its heading
    torch.testing.assert_close(out[2], torch.tensor([-8.0 - back * np.cos(0.2), -1.0 - back * np.sin(0.2), 0.2], dtype=torch.float64))


def test_ego_status_is_the_same_from_a_batch_and_from_an_observation():
    config = action_config(ego_status="token", ego_history_steps=3)
    history = np.array([[-8.0, 0.4, 0.05], [-4.0, 0.1, 0.02], [0.0, 0.0, 0.0]])
    rel_times = np.array([-1.0, -0.5, 0.0])
    observation = Observation(
        frames_rgb=np.zeros((1, 4, 4, 3), np.uint8),
        frame_timestamps_s=np.array([20.0]),
        ego_history_xyyaw=history,
        ego_history_timestamps_s=20.0 + rel_times,
        speed_mps=8.0,
        accel_mps2=0.5,
        yaw_rate_rps=-0.1,
        command=1,
        camera_intrinsics=np.array([[10.0, 0, 2], [0, 10.0, 2], [0, 0, 1]]),
        time_s=20.0,
    )
    batch = planner_batch(
        torch.tensor([1]), torch.tensor([8.0]), accel_mps2=torch.tensor([0.5]), yaw_rate_rps=torch.tensor([-0.1]),
        past_poses=torch.tensor(history, dtype=torch.float32)[None], frame_times_s=torch.tensor(rel_times, dtype=torch.float32)[None],
    )
    from_batch, from_observation = conditions_from_batch(batch, config), conditions_from_observation(observation, config)
    assert torch.equal(from_batch.command, from_observation.command)
    torch.testing.assert_close(from_batch.ego_status, from_observation.ego_status)
    assert from_batch.ego_status.shape == (1, 12)
    torch.testing.assert_close(from_batch.ego_status[0, :6], torch.tensor([0.8, 0.25, -0.2, -0.4, 0.01, 0.02]))
    # ego_features="speed": speed and acceleration only; the yaw rate and the past poses (what a
    # cloned policy copies its lateral motion from) never reach the model
    speed_only = action_config(ego_status="token", ego_features="speed", anchor="straight")
    from_batch, from_observation = conditions_from_batch(batch, speed_only), conditions_from_observation(observation, speed_only)
    assert speed_only.ego_status_dim == 2
    torch.testing.assert_close(from_batch.ego_status, torch.tensor([[0.8, 0.25]]))
    torch.testing.assert_close(from_observation.ego_status, from_batch.ego_status)
    turning = dataclasses.replace(batch, yaw_rate_rps=torch.tensor([0.4]), past_poses=torch.tensor(history * [1, -3, -2], dtype=torch.float32)[None])
    assert torch.equal(conditions_from_batch(turning, speed_only).ego_status, from_batch.ego_status)
    assert torch.equal(conditions_from_batch(turning, speed_only).anchor, from_batch.anchor)


def test_checkpoint_round_trip_is_exact_and_checked(tmp_path):
    for mode, ego in (("observed", "token"), ("none", "add")):
        model = make_model(seed=3, video_mode=mode, ego_status=ego).float()
        path = export_vam(model, tmp_path / mode, 0.5, ONE_SAMPLE, tokenizer={"name": "stand-in", "weights_sha256": "abc"}, extra={"steps": 0})
        assert path.name == "vam.safetensors" and path.with_suffix(".json").is_file()
        loaded = load_vam(tmp_path / mode)
        assert loaded.config == model.config and loaded.world_model_config == model.world_model_config and not loaded.training
        for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), name
        if loaded.world_model is not None:
            assert loaded.world_model.lm_head.weight is loaded.world_model.token_emb.weight  # still tied
    weights = tmp_path / "observed" / "vam.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b" ")
    with pytest.raises(ValueError, match="SHA-256"):
        load_vam(weights)
    with pytest.raises(ValueError, match="local paths"):
        load_vam("https://example.com/vam.safetensors")
    with pytest.raises(FileNotFoundError, match="vam.json"):
        load_vam(tmp_path / "nowhere")


def test_expert_sizes_match_the_reference():
    expected = {"S": (192, 21e6), "B": (256, 38e6), "L": (512, 150e6)}  # published: 21M, 38M, 150M
    with torch.device("meta"):
        for size, (width, params) in expected.items():
            expert = ActionExpert(action_config(), gpt_config(size, vocab_size=16384, tokens_h=18, tokens_w=32, max_frames=8))
            assert expert.width == width and len(expert.blocks) == 24
            assert expert.num_params() == pytest.approx(params, rel=0.02)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="n_imagined_frames"):
        action_config(video_mode="imagine")
    with pytest.raises(ValueError, match="expert_width_ratio"):
        VideoActionModel(GPT_CONFIG, action_config(expert_width_ratio=0.3))
    with pytest.raises(ValueError, match="imagined frames"):
        VideoActionModel(GPT_CONFIG, action_config(video_mode="imagine", n_imagined_frames=4))
    with pytest.raises(ValueError, match=r"unknown keys \['horizon'\]"):
        ActionModelConfig.from_dict({**REFERENCE_ACTION, "horizon": 3})
    with pytest.raises(ValueError, match=r"missing keys \['anchor'\]"):  # a checkpoint names every field
        ActionModelConfig.from_dict({k: v for k, v in REFERENCE_ACTION.items() if k != "anchor"})
    with pytest.raises(ValueError, match="ego_features"):
        action_config(ego_status="token", ego_features="pose")
    with pytest.raises(ValueError, match="straight"):
        action_config(ego_status="token", ego_features="speed", anchor="kinematic")
