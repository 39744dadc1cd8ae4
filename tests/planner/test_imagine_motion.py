"""The motions a conditioned world model is told when the planner imagines (planner/imagine_motion.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import planner.action_model.model as action_model_module
from data.schema import CameraExtrinsics
from planner.action_model import VideoActionModel
from planner.imagine_motion import PlanRecord, constant_turn_motions, imagined_motions, observed_motions
from planner.vam import VAMPlanner, synthetic_observations
from tests.planner.test_vam_planner import GPT_CONFIG, PatchMeanTokenizer
from tests.settings import action_config, vam_config
from world_model.tokenizer.model import ConvTokenizer, TokenizerConfig
from world_model.warp_tokens import GroundTokenWarper, window_warped_tokens

torch.set_num_threads(1)


def _observation(speed_mps: float = 8.0, yaw_rate_rps: float = 0.0):
    # 4 frames every 0.5 s of an ego driving straight at 8 m/s; its history in the current ego frame.
    return replace(synthetic_observations(1, 24, 48, seed=0)[0], speed_mps=speed_mps, yaw_rate_rps=yaw_rate_rps)


def test_previous_plan_gives_the_motion_into_each_imagined_frame():
    obs = _observation()
    now = float(obs.frame_timestamps_s[-1])
    # Planned 0.5 s ago: a left arc of 20 m radius at 10 m/s, waypoints every 0.5 s.
    t = 0.5 * np.arange(1, 9)
    yaw = 10.0 * t / 20.0
    waypoints = np.stack([20.0 * np.sin(yaw), 20.0 * (1 - np.cos(yaw)), yaw], axis=1)
    plan = PlanRecord.of(now - 0.5, waypoints, 0.5)
    motions = imagined_motions(plan, obs, 0.5, 2)
    # Each frame step is 5 m of the same arc: a chord of that arc, turning 0.25 rad.
    np.testing.assert_allclose(motions, np.tile([20 * np.sin(0.25), 20 * (1 - np.cos(0.25)), 0.25], (2, 1)), atol=1e-5)
    # Without a plan, or one that ends too early: the current speed and yaw rate are kept.
    np.testing.assert_allclose(imagined_motions(None, obs, 0.5, 2), [[4.0, 0.0, 0.0]] * 2, atol=1e-6)
    short = PlanRecord.of(now - 0.5, waypoints[:1], 0.5)
    np.testing.assert_allclose(imagined_motions(short, _observation(yaw_rate_rps=0.2), 0.5, 1), constant_turn_motions(8.0, 0.2, 0.5, 1), atol=1e-6)


def test_plan_without_yaw_takes_the_path_heading():
    plan = PlanRecord.of(0.0, np.array([[1.0, 0.0], [2.0, 1.0]]), 0.5)
    np.testing.assert_allclose(plan.waypoints[:, 2], [0.0, np.pi / 4])
    assert plan.pose_at(np.array([1.5])) is None  # past the last waypoint


def test_observed_motions_from_the_ego_history_unknown_for_padding():
    obs = _observation()
    times = [None, *obs.frame_timestamps_s[-3:].tolist()]  # one padding frame, then three frames 0.5 s apart
    motions = observed_motions(times, obs)
    assert np.isnan(motions[:2]).all()  # padding, and the first real frame has no predecessor in the window
    np.testing.assert_allclose(motions[2:], [[4.0, 0.0, 0.0]] * 2, atol=1e-6)


def test_imagine_mode_tells_a_conditioned_world_model_the_motions():
    torch.manual_seed(1)
    config = replace(GPT_CONFIG, ego_motion_input=True, prev_frame_token_input=True, prev_frame_token_position="target")
    model = VideoActionModel(config, action_config(expert_width_ratio=0.5, video_mode="imagine", n_imagined_frames=1, ego_status="token"))
    with torch.no_grad():
        model.world_model.ego_motion_emb.weight.normal_(0, 3.0)  # a trained-looking motion input
    seen = []
    imagine = model.imagine

    def spy(observed, n_frames, ego_motion=None, warper=None):
        seen.append(ego_motion)
        return imagine(observed, n_frames, ego_motion, warper)

    model.imagine = spy
    planner = VAMPlanner(model, PatchMeanTokenizer(16, 4), vam_config())
    stream = synthetic_observations(3, 24, 48, seed=1)
    plans = [planner.plan(o) for o in stream]
    assert all(m is not None and m.shape == (1, 4, 3) for m in seen)  # 3 observed + 1 imagined frame
    # First step: no previous plan, the ego's 8 m/s at 0.5 s per frame; then the previous plan's motion.
    np.testing.assert_allclose(seen[0][0, -1].numpy(), [4.0, 0.0, 0.0], atol=1e-6)
    expected = imagined_motions(PlanRecord.of(stream[1].time_s, plans[1].waypoints, plans[1].dt_s), stream[2], 0.5, 1)
    np.testing.assert_allclose(seen[2][0, -1].numpy(), expected[0], atol=1e-5)
    # The motion changes what the world model imagines (it is not ignored).
    observed = torch.randint(0, 16, (1, 3, 2, 4), generator=torch.Generator().manual_seed(0))
    motion = lambda dx: torch.tensor([[[float("nan")] * 3, [4.0, 0, 0], [4.0, 0, 0], [dx, 0, 0]]])  # noqa: E731
    variants = {tuple(imagine(observed, 1, motion(dx)).flatten().tolist()) for dx in (0.0, 4.0, 12.0)}
    assert len(variants) > 1


def test_unconditioned_world_model_ignores_motions():
    torch.manual_seed(2)
    model = VideoActionModel(GPT_CONFIG, action_config(expert_width_ratio=0.5, video_mode="imagine", n_imagined_frames=1, ego_status="token"))
    observed = torch.randint(0, 16, (1, 3, 2, 4), generator=torch.Generator().manual_seed(0))
    with_motion = model.imagine(observed, 1, torch.ones(1, 4, 3))
    assert torch.equal(with_motion, model.imagine(observed, 1))
    with pytest.raises(AttributeError):
        _ = model.world_model.ego_motion_emb.weight


def test_window_warped_tokens_warp_each_frame_from_the_one_before():
    calls = []

    def warper(tokens, motion):  # a recording stand-in: "warped" = tokens + 100, unknown where the motion is
        calls.append((tokens.clone(), motion.clone()))
        return torch.where(torch.isfinite(motion).all(dim=1)[:, None, None], tokens + 100, -1)

    tokens = torch.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    motions = torch.ones(2, 4, 3)
    motions[1, 2] = float("nan")
    out = window_warped_tokens(tokens, motions, warper)
    assert len(calls) == 2 and torch.equal(calls[1][0], tokens[:, 1])
    torch.testing.assert_close(calls[1][1], motions[:, 2], equal_nan=True)
    assert (out[:, 0] == -1).all() and torch.equal(out[:, 1], tokens[:, 0] + 100)
    assert torch.equal(out[0, 2], tokens[0, 1] + 100) and (out[1, 2] == -1).all()
    with pytest.raises(ValueError, match="motions"):
        window_warped_tokens(tokens, motions[:, :2], warper)


def test_warped_last_frame_world_model_imagines_with_the_observation_camera_mount(monkeypatch):
    """A world model with prev_frame_warp is told the motions only with the warped previous frames:
    the planner warps its observed frames on the ground plane with the observation's camera (and each
    imagined frame through the rollout's warper); an observation without a mount imagines unconditioned."""
    torch.manual_seed(4)
    config = replace(GPT_CONFIG, ego_motion_input=True, prev_frame_token_input=True, prev_frame_token_position="target", prev_frame_warp=True)
    model = VideoActionModel(config, action_config(expert_width_ratio=0.5, video_mode="imagine", n_imagined_frames=1, ego_status="token"))
    # 24x48 frames -> 2x4 tokens of 16 codes, as GPT_CONFIG: 3x3 patches, two 2x downsamplings, FSQ 4 x 4
    tokenizer = ConvTokenizer(TokenizerConfig(base_channels=4, channel_mult=(1, 1, 1), num_res_blocks=1, patch_size=3, fsq_levels=(4, 4)))
    rollouts = []
    rollout = action_model_module.rollout

    def recording_rollout(world_model, observed, n_frames, sampling, **kwargs):
        out = rollout(world_model, observed, n_frames, sampling, **kwargs)
        rollouts.append(dict(kwargs, observed=observed, out=out))
        return out

    monkeypatch.setattr(action_model_module, "rollout", recording_rollout)
    mount = CameraExtrinsics.from_mount(1.5, 1.5, 0.0, 0.05)
    mounted = VAMPlanner(model, tokenizer, vam_config())
    plans = [mounted.plan(replace(o, camera_extrinsics=mount)) for o in synthetic_observations(3, 24, 48, seed=1)]
    seen = rollouts[-1]
    motion, warper, warped = seen["ego_motion"], seen["warper"], seen["warped_prev"]
    assert isinstance(warper, GroundTokenWarper) and warper.cameras[0][1] == mount
    np.testing.assert_allclose(warper.cameras[0][0].matrix(), synthetic_observations(1, 24, 48)[0].camera_intrinsics, atol=1e-9)
    assert motion.shape == (1, 4, 3) and torch.isfinite(motion[0, 1:]).all()  # 3 observed frames (+ the imagined one)
    observed = seen["observed"]
    assert warped.shape == (1, 3, 2, 4) and (warped[:, 0] == -1).all()  # the observed frames' only: the rollout's warper does the imagined one
    for f in (1, 2):  # each observed frame's warped previous frame: the frame before it, warped by the motion into it
        assert torch.equal(warped[:, f], warper(observed[:, f - 1], motion[:, f]))
    assert torch.equal(torch.from_numpy(plans[-1].extras["imagined_tokens"]), seen["out"][0])
    # Without the mount: told nothing, as in the world model's conditioning dropout.
    rollouts.clear()
    VAMPlanner(model, tokenizer, vam_config()).plan(synthetic_observations(1, 24, 48, seed=1)[0])
    assert rollouts[-1]["ego_motion"] is None and rollouts[-1]["warped_prev"] is None and rollouts[-1]["warper"] is None
