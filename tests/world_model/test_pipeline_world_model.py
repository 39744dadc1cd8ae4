"""The world-model pipeline through the CLI, end to end at toy size:
synthetic clips -> train tokenizer -> tokenize -> train world model -> eval world model."""

from __future__ import annotations

import json

import pytest

from foresight.cli import main, run_subcommand
from tests.world_model.conftest import SMALL_WORLD_MODEL
from world_model.artifact import load_world_model
from world_model.tokens import TokenStore

REQUIRED = ("psnr_t1", "psnr_t2", "psnr_copy_last_t1", "psnr_copy_last_t2", "psnr_copy_last_raw_t1", "tokenizer_psnr",
            "token_accuracy", "cross_entropy", "ssim_t1", "psnr_changed_t1", "psnr_changed_copy_last_t1", "psnr_topk_t1",
            "psnr_road_t1", "rollout_token_accuracy_t1", "copy_last_token_accuracy_t1", "gain_vs_copy_last_t1",
            "gain_vs_copy_last_t1_stderr", "win_rate_vs_copy_last_t2", "psnr_uncond_t1", "psnr_uncond_t2", "ssim_uncond_t1",
            "gain_vs_uncond_t1", "gain_vs_uncond_t2", "gain_vs_uncond_t2_stderr", "win_rate_vs_uncond_t2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    for name, seed in (("train", 1000), ("heldout", 9000)):
        assert main(["data", "synth", f"out={root / name}", "episodes=2", "suites=[smoke]", f"seed={seed}", "height=32", "width=64", "fps=5"]) == 0
    tok = run_subcommand("train", "tokenizer", [
        f"clips={root / 'train'}", f"out={root / 'tok'}", "trainer=cpu", "tokenizer.max_steps=2", "tokenizer.model.base_channels=4",
        "tokenizer.batch_size=4", "tokenizer.val_frames=2", "tokenizer.val_every_n_steps=2", "tokenizer.eval_frames=4",
        "tokenizer.checkpoint_every_n_steps=2", "trainer.precision=32-true",
    ])
    assert tok["steps"] == 2 and tok["grid_hw"] == [4, 8]
    manifest = run_subcommand("data", "tokenize", [f"clips={root / 'train'}", f"tokenizer={root / 'tok'}", f"out={root / 'tokens'}", "num_workers=0"])
    assert manifest.complete
    train_args = [f"tokens={root / 'tokens'}", f"out={root / 'wm'}", *SMALL_WORLD_MODEL, "trainer=cpu", "world_model.max_steps=3",
                  "world_model.checkpoint_every_n_steps=2", "world_model.val_every_n_steps=2"]
    summary = run_subcommand("train", "world_model", train_args)
    metrics = run_subcommand("eval", "world_model", [
        f"checkpoint={root / 'wm'}", f"tokenizer={root / 'tok'}", f"clips=[{root / 'heldout'},{root / 'train'}]", f"out={root / 'eval'}",
        "max_windows=3", "batch_size=2", "videos=2", f"tokenizer_only_clips=[{root / 'train'}]",
    ])
    return {"root": root, "summary": summary, "metrics": metrics, "train_args": train_args}


def test_training_writes_checkpoints_export_logs_and_summary(runs):
    root, summary = runs["root"], runs["summary"]
    assert summary["steps"] == 3 and summary["fps"] == 5.0 and summary["grid_hw"] == [4, 8]
    assert sorted(p.name for p in (root / "wm" / "checkpoints").iterdir()) == ["epoch=0-step=2.ckpt", "final.ckpt", "last.ckpt"]
    assert json.loads((root / "wm" / "train_summary.json").read_text())["steps"] == 3
    header = next((root / "wm" / "logs").rglob("metrics.csv")).read_text().splitlines()[0]
    for name in ("train/loss", "train/lr", "mix/tokens", "val/loss", "val/loss/tokens", "val/loss_uncond"):
        assert name in header
    # The tiny profile's model is told the ego's motion; the token store carries every clip's poses.
    assert summary["sources"]["tokens"]["clips_with_poses"] == summary["sources"]["tokens"]["clips"] > 0
    loaded = load_world_model(root / "wm")
    assert loaded.meta.fps == 5.0 and loaded.meta.tokenizer_sha256 == TokenStore(root / "tokens").tokenizer["weights_sha256"]
    assert loaded.model.config.ego_motion_input and json.loads((root / "wm" / "world_model.json").read_text())["gpt"]["ego_motion_input"]
    ckpt = load_world_model(root / "wm" / "checkpoints" / "final.ckpt")  # a .ckpt carries the same facts
    assert ckpt.meta.fps == 5.0 and ckpt.meta.tokenizer_sha256 == loaded.meta.tokenizer_sha256
    for key, value in loaded.model.state_dict().items():
        assert (ckpt.model.state_dict()[key] == value).all(), key
    # The same command again: nothing left to train, the export is rewritten from final.ckpt.
    again = run_subcommand("train", "world_model", runs["train_args"])
    assert again["steps"] == 3 and again["steps_this_run"] == 0


def test_eval_reports_prediction_against_copy_last_per_source(runs):
    root, m = runs["root"], runs["metrics"]
    saved = json.loads((root / "eval" / "metrics.json").read_text())
    for key in REQUIRED:
        assert saved[key] is not None and saved[key] == pytest.approx(m[key]), key
    assert set(m["per_source"]) == {"synth", "synth@train"} and m["num_windows"] == 6
    for source in m["per_source"].values():
        assert source["num_windows"] == 3 and all(k in source for k in REQUIRED)
    assert 0 <= m["token_accuracy"] <= 1 and m["cross_entropy"] > 0 and 0 <= m["win_rate_vs_copy_last_t1"] <= 1
    # The paired per-window gain averages to the difference of the two mean PSNRs.
    for i in (1, 2):
        assert m[f"gain_vs_copy_last_t{i}"] == pytest.approx(m[f"psnr_t{i}"] - m[f"psnr_copy_last_t{i}"], abs=1e-6)
        # Conditioned (the windows' true motions) against the same model without them, on the same windows.
        assert m[f"gain_vs_uncond_t{i}"] == pytest.approx(m[f"psnr_t{i}"] - m[f"psnr_uncond_t{i}"], abs=1e-6)
    assert m["ego_motion_input"] is True
    assert m["context_frames"] == 3 and m["horizon"] == 2 and m["fps"] == 5.0
    cross = m["tokenizer_only"]["synth@train"]  # e.g. real data as a cross-domain figure
    assert cross["num_frames"] == 3 and 0 < cross["psnr_db"] < 60
    assert len(m["videos"]) == 2 and all((root / "eval" / "videos" / v.split("/")[-1]).stat().st_size > 0 for v in m["videos"])


def test_eval_refuses_another_tokenizer(runs, tmp_path):
    import torch

    from world_model.tokenizer import ConvTokenizer, export_tokenizer, tokenizer_config

    torch.manual_seed(1)
    export_tokenizer(ConvTokenizer(tokenizer_config("tiny", base_channels=4)).eval(), tmp_path / "other")
    root = runs["root"]
    assert main(["eval", "world_model", f"checkpoint={root / 'wm'}", f"tokenizer={tmp_path / 'other'}", f"clips={root / 'heldout'}", f"out={tmp_path / 'e'}"]) == 1
