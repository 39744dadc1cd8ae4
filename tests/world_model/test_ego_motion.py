"""The ego-motion-conditioned world model: conditioning dropout 1 is the unconditioned model bit for
bit, motions reach exactly the positions that predict their frame, and rollouts with a given motion
sequence are deterministic and identical across decoding paths (plain, speculative, fixed-shape)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data.ego_motion import PoseStream
from tests.settings import gpt_optim, wsd
from tests.training.callbacks import fit_recording_losses
from world_model.gpt import GPT, GPTConfig, SamplingConfig, rollout
from world_model.gpt.ego_motion import drop_motions, frame_motions, window_motions
from world_model.gpt.lightning_module import GPTLightningModule
from world_model.gpt.static_step import StaticDecoder
from world_model.tokens_dataset import MixingSampler, TokenWindowDataset

# Model dropout on, so the test also shows the conditioned model draws no extra random numbers.
BASE = GPTConfig(vocab_size=40, tokens_h=2, tokens_w=3, max_frames=3, n_layer=2, n_head=2, n_embd=32, dropout=0.1, prev_frame_token_input=True)
CONDITIONED = replace(BASE, ego_motion_input=True)
OPTIM = gpt_optim(wsd(6, warmup_frac=1 / 3, decay_frac=1 / 3))


def _turning_poses(n_frames: int, seed: int) -> np.ndarray:
    """(T, 4) [x, y, z, yaw] of a car turning at a random constant speed and yaw rate."""
    rng = np.random.default_rng(seed)
    speed, yaw_rate = rng.uniform(1.0, 3.0), rng.uniform(-0.3, 0.3)
    yaw = yaw_rate * np.arange(n_frames)
    x, y = np.cumsum(speed * np.cos(yaw)), np.cumsum(speed * np.sin(yaw))
    return np.stack([x, y, np.zeros(n_frames), yaw], axis=1).astype(np.float32)


def _loader() -> DataLoader:
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 40, (6, 2, 3)).astype(np.uint16) for _ in range(2)]
    dataset = TokenWindowDataset(clips, n_frames=3, source="synth", poses=[_turning_poses(6, 0), _turning_poses(6, 1)])
    sampler = MixingSampler({"synth": dataset}, {"synth": 1.0}, num_samples=6, seed=3)  # an epoch = 3 steps = a checkpoint
    return DataLoader(sampler.dataset, batch_size=2, sampler=sampler)


def _eval_batch() -> dict[str, torch.Tensor]:
    return next(iter(DataLoader(_loader().dataset, batch_size=4)))


def _train(config: GPTConfig, tmp_path, name: str, dropout: float) -> tuple[GPTLightningModule, dict[int, float]]:
    torch.manual_seed(0)
    module = GPTLightningModule(config, OPTIM, ego_motion_dropout=dropout, seed=5)
    losses = fit_recording_losses(module, _loader, tmp_path / name)
    return module.eval(), losses


def test_conditioning_dropout_one_reproduces_the_unconditioned_model_bit_for_bit(tmp_path):
    plain, plain_losses = _train(BASE, tmp_path, "plain", 0.0)
    dropped, dropped_losses = _train(CONDITIONED, tmp_path, "dropped", 1.0)
    assert plain_losses == dropped_losses  # every step, bit-exact (dropout masks included)
    batch = _eval_batch()
    with torch.no_grad():
        want = plain.model(batch["tokens"]).logits
        assert torch.equal(dropped.model(batch["tokens"], ego_motion=batch["ego_motion"]).logits, want)
        assert torch.equal(dropped.model(batch["tokens"]).logits, want)
    assert torch.count_nonzero(dropped.model.ego_motion_emb.weight) == 0  # never trained
    for name, value in plain.model.state_dict().items():
        assert torch.equal(dropped.model.state_dict()[name], value), name


def test_trained_with_motions_the_model_predicts_differently_with_them(tmp_path):
    module, _ = _train(CONDITIONED, tmp_path, "cond", 0.0)
    batch = _eval_batch()
    assert torch.isfinite(batch["ego_motion"][:, 1:]).all()
    with torch.no_grad():
        with_motion = module.model(batch["tokens"], ego_motion=batch["ego_motion"]).logits
        without = module.model(batch["tokens"]).logits
    hw = CONDITIONED.tokens_per_frame
    # Positions predicting frame 0 never see a motion; every later position does.
    assert torch.equal(with_motion[:, : hw - 1], without[:, : hw - 1])
    assert (with_motion[:, hw - 1 :] - without[:, hw - 1 :]).abs().amax() > 1e-4


def _random_conditioned(seed: int, config: GPTConfig) -> GPT:
    torch.manual_seed(seed)
    model = GPT(config).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
        model.ego_motion_emb.weight.normal_(0.0, 1.0)  # strong enough to change greedy tokens
    return model


def test_a_motion_reaches_the_positions_predicting_its_frame_and_nothing_before():
    model = _random_conditioned(0, replace(CONDITIONED, dropout=0.0, max_frames=4))
    hw = model.config.tokens_per_frame
    tokens = torch.randint(0, 40, (2, 4, 2, 3), generator=torch.Generator().manual_seed(1))
    motion = torch.randn(2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    base = model(tokens, ego_motion=motion).logits
    for frame in range(4):
        changed = motion.clone()
        changed[:, frame] += 1.0
        diff = (model(tokens, ego_motion=changed).logits - base).abs().amax(dim=(0, 2))  # (L,)
        first = frame * hw - 1  # the last token of frame - 1 predicts frame's first token
        if frame == 0:
            assert diff.amax() == 0  # frame 0 has no motion into it
            continue
        # Nothing before that position changes (causal), each position predicting the frame does directly.
        assert diff[:first].amax() == 0 and (diff[first : first + hw] > 0).all()
    # Unknown (NaN) motions and a missing motion tensor add exactly nothing.
    unknown = torch.full_like(motion, float("nan"))
    assert torch.equal(model(tokens, ego_motion=unknown).logits, model(tokens).logits)
    partly = motion.clone()
    partly[:, 2] = float("nan")
    no_frame_2 = motion.clone()
    no_frame_2[:, 2] = 0.0
    assert not torch.equal(model(tokens, ego_motion=partly).logits, model(tokens, ego_motion=no_frame_2).logits)


def test_greedy_rollout_with_motions_is_deterministic_and_the_same_on_every_decoding_path():
    config = replace(CONDITIONED, dropout=0.0, max_frames=3)
    model = _random_conditioned(3, config)
    g = torch.Generator().manual_seed(4)
    context = torch.randint(0, 40, (2, 2, 2, 3), generator=g)
    n_future = 5  # past the context window: the window slides and is re-encoded
    motion = torch.randn(2, 2 + n_future, 3, dtype=torch.float64, generator=g)
    motion[:, :2] = float("nan")  # only the future motions given
    plain = rollout(model, context, n_future, ego_motion=motion, speculative_block=0)
    assert torch.equal(rollout(model, context, n_future, ego_motion=motion, speculative_block=0), plain)
    assert torch.equal(rollout(model, context, n_future, ego_motion=motion, use_cache=False), plain)
    assert torch.equal(rollout(model, context, n_future, ego_motion=motion), plain)  # speculative, whole frame
    assert torch.equal(rollout(model, context, n_future, ego_motion=motion, speculative_block=2), plain)
    decoder = StaticDecoder(model, batch=2, block=4, device="cpu", dtype=torch.float64)
    assert torch.equal(rollout(model, context, n_future, ego_motion=motion, static_decoder=decoder), plain)
    top1 = SamplingConfig(temperature=1.0, top_k=1)
    assert torch.equal(rollout(model, context, n_future, top1, torch.Generator().manual_seed(0), ego_motion=motion), plain)
    # The motions matter, and no motions is the unconditioned rollout on every path.
    other = motion.clone()
    other[:, 2:] = -other[:, 2:]
    assert not torch.equal(rollout(model, context, n_future, ego_motion=other), plain)
    unconditioned = rollout(model, context, n_future, speculative_block=0)
    assert torch.equal(rollout(model, context, n_future, static_decoder=decoder), unconditioned)
    with pytest.raises(ValueError, match="ego_motion must be float"):
        rollout(model, context, n_future, ego_motion=motion[:, 2:])  # future-only is refused: motions align with frames


def test_frame_motions_are_relative_poses_and_dropout_drops_whole_windows():
    stream = PoseStream(np.arange(5) * 100_000, np.c_[np.cumsum(np.full(5, 2.0)), np.zeros(5), np.zeros(5)], np.linspace(0.0, 0.4, 5))
    poses = stream.pose_at(stream.timestamps_us)[:, [0, 1, 3]]
    motions = frame_motions(poses)
    assert np.isnan(motions[0]).all()
    for f in range(1, 5):
        np.testing.assert_allclose(motions[f], stream.in_ego_frame(int(stream.timestamps_us[f - 1]), stream.timestamps_us[f : f + 1])[0], atol=1e-6)
    batch = window_motions(torch.from_numpy(np.stack([poses, poses])), torch.tensor([True, False]))
    assert torch.equal(batch[0].isnan(), torch.from_numpy(np.isnan(motions))) and batch[1].isnan().all()
    motion = torch.zeros(3, 4, 3)
    dropped = drop_motions(motion, 0.5, torch.tensor([0.2, 0.7, 0.49]))
    assert dropped[[0, 2]].isnan().all() and torch.equal(dropped[1], motion[1])
    assert drop_motions(motion, 1.0, torch.tensor([0.0, 0.5, 0.999])).isnan().all()
    assert torch.equal(drop_motions(motion, 0.0, torch.tensor([0.0, 0.5, 0.999])), motion)


def test_conditioned_training_resumes_exactly(tmp_path):
    """The dropout draws come from the module's own generator, saved with every checkpoint."""
    torch.manual_seed(0)
    first = fit_recording_losses(GPTLightningModule(CONDITIONED, OPTIM, ego_motion_dropout=0.5, seed=5), _loader, tmp_path / "a")
    (step3,) = (tmp_path / "a").glob("*step=3.ckpt")
    torch.manual_seed(123)
    resumed = fit_recording_losses(GPTLightningModule(CONDITIONED, OPTIM, ego_motion_dropout=0.5, seed=99), _loader, tmp_path / "b", step3)
    assert [resumed[s] for s in (4, 5, 6)] == [first[s] for s in (4, 5, 6)]


def test_export_carries_the_conditioning_and_old_exports_load(tmp_path):
    import json

    from world_model.artifact import WorldModelMeta, export_world_model, load_world_model

    model = _random_conditioned(6, replace(CONDITIONED, dropout=0.0, ego_motion_scale=(1.0, 0.5, 0.25)))
    export_world_model(model.float(), tmp_path / "cond", WorldModelMeta(fps=5.0, tokenizer={}))
    doc = json.loads((tmp_path / "cond" / "world_model.json").read_text())
    assert doc["gpt"]["ego_motion_input"] is True and doc["gpt"]["ego_motion_scale"] == [1.0, 0.5, 0.25]
    loaded = load_world_model(tmp_path / "cond").model
    assert loaded.config == model.config
    batch = _eval_batch()
    assert torch.equal(loaded(batch["tokens"], ego_motion=batch["ego_motion"]).logits, model(batch["tokens"], ego_motion=batch["ego_motion"]).logits)
    # An export written before the field existed: no ego keys in its config, no ego weights.
    torch.manual_seed(0)
    export_world_model(GPT(replace(BASE, dropout=0.0)).eval(), tmp_path / "old", WorldModelMeta(fps=5.0, tokenizer={}))
    path = tmp_path / "old" / "world_model.json"
    old = json.loads(path.read_text())
    del old["gpt"]["ego_motion_input"], old["gpt"]["ego_motion_scale"]
    path.write_text(json.dumps(old))
    assert load_world_model(tmp_path / "old").model.ego_motion_emb is None
