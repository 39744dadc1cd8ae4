"""`train tokenizer` end to end on a tiny clip store: checkpoints, export, evaluation, exact resume."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from configs import compose
from data.store import ClipStore
from tests.conftest import REPO_ROOT
from tests.training.callbacks import Kill, LossRecorder
from tests.training.probe import TrainerProbe
from world_model.tokenizer import load_tokenizer
from world_model.tokenizer.train import evaluate_reconstruction, run_train

TINY = [
    "tokenizer.model.base_channels=8", "tokenizer.batch_size=4", "tokenizer.warmup_steps=1", "tokenizer.lr=2e-3",
    "tokenizer.val_frames=2", "tokenizer.val_every_n_steps=2", "tokenizer.checkpoint_every_n_steps=2", "tokenizer.eval_frames=6",
    "tokenizer.num_workers=0", "tokenizer.log_every_n_steps=1", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.progress_bar=false",
]


def config(road_clips_dir, out, *overrides: str):
    return compose("train/tokenizer", [f"clips={road_clips_dir}", f"out={out}", *TINY, *overrides])


def test_train_export_evaluate_and_resume(road_clips_dir, tmp_path):
    summary = run_train(config(road_clips_dir, tmp_path, "tokenizer.max_steps=4"))
    assert summary["steps"] == 4 and summary["steps_this_run"] == 4 and summary["grid_hw"] == [4, 8]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((tmp_path / "train_summary.json").read_text())
    assert saved["eval"] == summary["eval"] and saved["config"]["max_steps"] == 4 and saved["precision"] in ("32-true", "bf16-mixed")
    metrics = (tmp_path / "logs").rglob("metrics.csv")
    header = next(metrics).read_text().splitlines()[0]
    for name in ("train/loss", "train/psnr_db", "train/code_usage", "train/perplexity", "val/psnr_db", "val/ssim"):
        assert name in header

    model = load_tokenizer(tmp_path)
    again = evaluate_reconstruction(model, ClipStore(road_clips_dir), max_frames=6, batch_size=4)
    assert again == pytest.approx(summary["eval"], rel=1e-5)
    assert 0 < again["psnr_db"] < 60 and 0 < again["ssim"] <= 1 and again["num_frames"] == 6
    assert json.loads((tmp_path / "tokenizer.json").read_text())["extra"]["steps"] == 4

    resumed = run_train(config(road_clips_dir, tmp_path, "tokenizer.max_steps=6"))  # continues from last.ckpt at step 4
    assert resumed["steps"] == 6 and resumed["steps_this_run"] == 2
    done = run_train(config(road_clips_dir, tmp_path, "tokenizer.max_steps=6"))  # nothing left to do: still exports and evaluates
    assert done["steps"] == 6 and done["steps_this_run"] == 0
    with pytest.raises(ValueError, match="holds a run of another model"):
        run_train(config(road_clips_dir, tmp_path, "tokenizer.max_steps=8", "tokenizer.model.base_channels=16"))


def test_rerunning_a_killed_run_continues_the_same_loss_curve(road_clips_dir, tmp_path):
    whole = LossRecorder()
    run_train(config(road_clips_dir, tmp_path / "whole", "tokenizer.max_steps=6"), [whole])
    assert sorted(whole.losses) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_train(config(road_clips_dir, tmp_path / "killed", "tokenizer.max_steps=6"), [Kill(at_step=3)])  # dies in step 4; last.ckpt holds step 2
    assert torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    resumed = LossRecorder()
    run_train(config(road_clips_dir, tmp_path / "killed", "tokenizer.max_steps=6"), [resumed])
    assert sorted(resumed.losses) == [3, 4, 5, 6]
    assert [resumed.losses[s] for s in (3, 4, 5, 6)] == [whole.losses[s] for s in (3, 4, 5, 6)]  # same batches, same weights: exact


def test_the_trainer_group_decides_strategy_devices_precision_and_retention(road_clips_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("foresight.training.precision.cpu_has_native_bf16", lambda: False)  # an AVX2-only CPU
    probe = TrainerProbe()
    summary = run_train(config(road_clips_dir, tmp_path, "tokenizer.max_steps=6", "trainer.strategy=ddp", "trainer.keep_checkpoints=1"), [probe])
    assert probe.seen == {"strategy": "DDPStrategy", "devices": 1, "world_size": 1, "precision": "32-true"} and summary["precision"] == "32-true"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch=2-step=6.ckpt", "final.ckpt", "last.ckpt"]


def test_standalone_tiny_tokenizer_trains_as_long_as_the_demo_does():
    """`foresight train tokenizer experiment=tiny` and the tiny demo train the same tokenizer: the
    profile's step count is the one the demo passes (the measured PSNR in the profile's header holds for both)."""
    demo_profile = yaml.safe_load((REPO_ROOT / "configs" / "profile" / "tiny.yaml").read_text())
    standalone = compose("train/tokenizer", ["clips=c", "out=o", "experiment=tiny"]).tokenizer
    assert standalone.max_steps == demo_profile["tokenizer"]["max_steps"]
