"""Action-model Lightning module: exact resume, validation metrics, frozen vs trainable world model."""

from __future__ import annotations

import dataclasses

import lightning as L
import pytest
import torch
from torch.utils.data import Dataset

from planner.action_model import sample_plans
from planner.action_model.lightning_module import VAMLightningModule
from planner.batch import PlannerBatch, planner_loader
from tests.settings import action_config, flow_config, planner_batch, vam_optim, wsd
from tests.training.callbacks import fit_recording_losses
from world_model.gpt import GPT, GPTConfig

torch.set_num_threads(1)

GPT_CONFIG = GPTConfig(vocab_size=20, tokens_h=2, tokens_w=2, max_frames=3, n_layer=2, n_head=2, n_embd=32, dropout=0.1)
ACTION = action_config(expert_width_ratio=0.5, ego_status="token", dropout=0.1)
OPTIM = vam_optim(wsd(6, warmup_frac=1 / 3, decay_frac=1 / 3))
FLOW = flow_config(samples_per_window=2, seed=7, eval_samples=3, eval_steps=4)


class WindowDataset(Dataset):
    """Planner windows (PlannerBatch items) of an ego driving straight at a random speed, random tokens."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            speed = 2.0 + 8.0 * torch.rand((), generator=g)
            times = torch.tensor([-1.0, -0.5, 0.0])
            k = torch.arange(1, 7, dtype=torch.float32)
            trajectory = torch.stack([speed * 0.5 * k, torch.zeros(6), torch.zeros(6)], dim=-1)
            valid = torch.ones(6, dtype=torch.bool)
            valid[4 + i % 3 :] = False  # some windows end before 3 s
            window = planner_batch(
                torch.tensor([i % 3]), speed[None], trajectory=trajectory[None], trajectory_valid=valid[None], frame_times_s=times[None],
                past_poses=torch.stack([speed * times, torch.zeros(3), torch.zeros(3)], dim=-1)[None],
                tokens=torch.randint(0, 20, (1, 3, 2, 2), generator=g),
            )
            self.items.append(window.select(0))  # one window: no batch dimension

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> PlannerBatch:
        return self.items[i]


def fit(module: VAMLightningModule, ckpt_dir, ckpt_path=None) -> dict[int, float]:
    return fit_recording_losses(module, lambda: planner_loader(WindowDataset(6, seed=0), 2), ckpt_dir, ckpt_path)


def test_resume_from_step_3_reproduces_steps_4_to_6_exactly(tmp_path):
    torch.manual_seed(0)
    first = fit(VAMLightningModule(GPT_CONFIG, ACTION, OPTIM, FLOW), tmp_path / "a")
    assert sorted(first) == [1, 2, 3, 4, 5, 6]
    (step3,) = (tmp_path / "a").glob("*step=3.ckpt")
    torch.manual_seed(123)  # another init and RNG state: weights, optimiser and both RNGs come from the checkpoint
    resumed = fit(VAMLightningModule(GPT_CONFIG, ACTION, OPTIM, FLOW), tmp_path / "b", ckpt_path=step3)
    assert sorted(resumed) == [4, 5, 6]
    assert [resumed[s] for s in (4, 5, 6)] == [first[s] for s in (4, 5, 6)]  # bit-exact

    (step6,) = (tmp_path / "a").glob("*step=6.ckpt")
    module = VAMLightningModule.load_from_checkpoint(step6, weights_only=True)
    assert module.action_config == ACTION and module.optim_config == OPTIM and module.flow_config == FLOW


def test_frozen_world_model_stays_in_eval_and_gets_no_gradients():
    torch.manual_seed(0)
    pretrained = GPT(GPT_CONFIG)
    module = VAMLightningModule(GPT_CONFIG, ACTION, OPTIM, FLOW)
    module.load_world_model(pretrained)
    module.train()
    assert module.model.expert.training and not module.model.world_model.training
    batch = next(iter(planner_loader(WindowDataset(4, seed=1), 4)))
    before = {k: v.clone() for k, v in module.model.world_model.state_dict().items()}
    module.flow_loss(batch, torch.Generator().manual_seed(0)).backward()
    assert all(p.grad is None for p in module.model.world_model.parameters())
    assert all(p.grad is not None for p in module.model.expert.parameters())
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert [g["name"] for g in groups] == ["expert", "expert_no_decay"]
    assert all(torch.equal(before[k], v) for k, v in module.model.world_model.state_dict().items())
    assert torch.equal(module.model.world_model.token_emb.weight, pretrained.token_emb.weight)


def test_unfrozen_world_model_trains_with_its_own_learning_rate():
    torch.manual_seed(0)
    module = VAMLightningModule(GPT_CONFIG, ACTION, vam_optim(OPTIM.schedule, world_model_lr=1e-4), FLOW)
    module.train()
    assert module.model.world_model.training
    batch = next(iter(planner_loader(WindowDataset(4, seed=1), 4)))
    module.flow_loss(batch, torch.Generator().manual_seed(0)).backward()
    # Everything that shapes the video keys/values gets gradients (the last block's attention output
    # and MLP only feed the unused logits).
    wm = module.model.world_model
    assert wm.token_emb.weight.grad is not None and all(block.attn.qkv.weight.grad is not None for block in wm.blocks)
    assert all(p.grad is not None for p in wm.blocks[0].parameters()) and wm.blocks[-1].mlp.fc.weight.grad is None
    groups = {g["name"]: g["lr"] for g in module.configure_optimizers()["optimizer"].param_groups}
    assert groups["expert"] == 3e-3 / 2 and groups["world_model_hidden"] == 1e-4 / 2  # WSD warmup factor 1/2 at step 0


def test_validation_logs_loss_and_open_loop_metrics():
    torch.manual_seed(0)
    module = VAMLightningModule(GPT_CONFIG, ACTION, OPTIM, FLOW)
    trainer = L.Trainer(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, logger=False)
    loader = planner_loader(WindowDataset(6, seed=2), 3)
    (metrics,) = trainer.validate(module, loader, weights_only=True)
    assert set(metrics) == {"val/loss", "val/min_ade", "val/min_fde", "val/l2_1s", "val/l2_2s", "val/l2_3s"}
    (again,) = trainer.validate(module, loader, weights_only=True)
    assert again == metrics  # fixed per-batch seeds
    assert 0.0 < metrics["val/min_ade"] <= metrics["val/l2_2s"] + 200.0
    # minADE over 3 samples is at most the mean ADE of sample 0 alone.
    batch = next(iter(loader))
    plans = sample_plans(module.model, batch, 3, 4, "euler", torch.Generator().manual_seed(0))
    assert plans.shape == (3, 3, 6, 2)
    with pytest.raises(ValueError, match="Generator"):
        sample_plans(module.model, batch, 3, 4, "euler", None)


def test_imagine_mode_trains_on_teacher_forced_or_imagined_frames():
    torch.manual_seed(0)
    action = action_config(expert_width_ratio=0.5, ego_status="token", video_mode="imagine", n_imagined_frames=1)
    module = VAMLightningModule(GPT_CONFIG, action, OPTIM, FLOW)
    batch = next(iter(planner_loader(WindowDataset(4, seed=3), 4)))
    imagined = module.flow_loss(batch, torch.Generator().manual_seed(0))  # greedy world-model rollout
    teacher = module.flow_loss(dataclasses.replace(batch, future_tokens=torch.randint(0, 20, (4, 2, 2, 2))), torch.Generator().manual_seed(0))
    assert torch.isfinite(imagined) and torch.isfinite(teacher) and imagined.item() != teacher.item()
    teacher.backward()
    assert all(p.grad is not None for p in module.model.expert.parameters())
