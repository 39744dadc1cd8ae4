"""GPT Lightning module: exact resume from a checkpoint, and rebuilding the model from one."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tests.settings import gpt_optim, wsd
from tests.training.callbacks import fit_recording_losses
from world_model.gpt import GPTConfig
from world_model.gpt.lightning_module import GPTLightningModule, load_gpt_from_checkpoint
from world_model.tokens_dataset import MixingSampler, TokenWindowDataset

CONFIG = GPTConfig(vocab_size=40, tokens_h=2, tokens_w=3, max_frames=3, n_layer=2, n_head=2, n_embd=32, dropout=0.1, prev_frame_token_input=True)
OPTIM = gpt_optim(wsd(6, warmup_frac=1 / 3, decay_frac=1 / 3))


def sampler() -> MixingSampler:
    rng = np.random.default_rng(0)
    sources = {
        name: TokenWindowDataset([rng.integers(0, 40, (6, 2, 3)).astype(np.uint16)], n_frames=3, source=name) for name in ("opendv", "nuplan")
    }
    return MixingSampler(sources, {"opendv": 0.5, "nuplan": 0.5}, num_samples=6, seed=3)


def loader() -> DataLoader:
    s = sampler()
    return DataLoader(s.dataset, batch_size=2, sampler=s)


def fit(module: GPTLightningModule, ckpt_dir, ckpt_path=None) -> dict[int, float]:
    return fit_recording_losses(module, loader, ckpt_dir, ckpt_path)


def test_resume_from_step_3_reproduces_steps_4_to_6_exactly(tmp_path):
    torch.manual_seed(0)
    first = fit(GPTLightningModule(CONFIG, OPTIM), tmp_path / "a")
    assert sorted(first) == [1, 2, 3, 4, 5, 6]
    (step3,) = (tmp_path / "a").glob("*step=3.ckpt")
    torch.manual_seed(123)  # a different fresh init and RNG state: both must come from the checkpoint
    resumed = fit(GPTLightningModule(CONFIG, OPTIM), tmp_path / "b", ckpt_path=step3)
    assert sorted(resumed) == [4, 5, 6]
    assert [resumed[s] for s in (4, 5, 6)] == [first[s] for s in (4, 5, 6)]  # bit-exact

    # The step-6 checkpoint rebuilds the model from its hparams alone (weights_only load).
    (step6,) = (tmp_path / "a").glob("*step=6.ckpt")
    model = load_gpt_from_checkpoint(step6)
    assert model.config == CONFIG and not model.training
    module = GPTLightningModule.load_from_checkpoint(step6, weights_only=True)
    assert module.optim_config == OPTIM
    tokens = next(iter(loader()))["tokens"]
    module.eval()
    torch.testing.assert_close(model(tokens).logits, module.model(tokens).logits, rtol=0, atol=0)


def test_validation_logs_loss_accuracy_and_per_source_loss():
    torch.manual_seed(0)
    module = GPTLightningModule(CONFIG, OPTIM)
    trainer = L.Trainer(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, logger=False)
    s = sampler()
    (metrics,) = trainer.validate(module, DataLoader(s.dataset, batch_size=3, sampler=s), weights_only=True)
    assert set(metrics) == {"val/loss", "val/token_acc", "val/loss/opendv", "val/loss/nuplan"}
    assert 0.0 <= metrics["val/token_acc"] <= 1.0
    assert abs(metrics["val/loss"] - np.log(40)) < 0.5
    # Optimiser: AdamW with the configured betas, WSD factor 1/2 at step 0 (warmup of 2 steps).
    optimizers = module.configure_optimizers()
    optimizer, scheduler = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["betas"] == (0.9, 0.95)
    assert scheduler.get_last_lr()[0] == pytest.approx(1.5e-3)
