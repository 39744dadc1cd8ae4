"""run_train end to end on a tiny clip store: checkpoints, export, evaluation, resume."""

from __future__ import annotations

import json

import pytest

from data.bench import road_like_clip
from data.store import ClipStore, ClipStoreWriter
from world_model.tokenizer import load_tokenizer
from world_model.tokenizer.train import evaluate_reconstruction, run_train


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("clips")
    with ClipStoreWriter(out, "test", {"t": 1}, codec="png") as w:
        for i in range(2):
            w.add(f"item{i}", [road_like_clip(f"clip{i}", 6, 32, 64, seed=i)])
    return out


def test_train_export_evaluate_and_resume(clips_dir, tmp_path):
    cfg = {
        "clips": str(clips_dir), "out": str(tmp_path), "model": {"base_channels": 8}, "batch_size": 4,
        "max_steps": 4, "warmup_steps": 1, "lr": 2e-3, "val_frames": 2, "val_every_n_steps": 2,
        "checkpoint_every_n_steps": 2, "eval_frames": 6, "num_workers": 0, "log_every_n_steps": 1,
    }
    summary = run_train(cfg)
    assert summary["steps"] == 4 and summary["steps_this_run"] == 4 and summary["grid_hw"] == [4, 8]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((tmp_path / "train_summary.json").read_text())
    assert saved["eval"] == summary["eval"] and saved["config"]["max_steps"] == 4
    metrics = (tmp_path / "logs").rglob("metrics.csv")
    header = next(metrics).read_text().splitlines()[0]
    for name in ("train/loss", "train/psnr_db", "train/code_usage", "train/perplexity", "val/psnr_db", "val/ssim"):
        assert name in header

    model = load_tokenizer(tmp_path)
    again = evaluate_reconstruction(model, ClipStore(clips_dir), max_frames=6, batch_size=4)
    assert again == pytest.approx(summary["eval"], rel=1e-5)
    assert 0 < again["psnr_db"] < 60 and 0 < again["ssim"] <= 1 and again["num_frames"] == 6
    assert json.loads((tmp_path / "tokenizer.json").read_text())["extra"]["steps"] == 4

    resumed = run_train({**cfg, "max_steps": 6})  # continues from last.ckpt at step 4
    assert resumed["steps"] == 6 and resumed["steps_this_run"] == 2
    done = run_train({**cfg, "max_steps": 6})  # nothing left to do: still exports and evaluates
    assert done["steps"] == 6 and done["steps_this_run"] == 0
    with pytest.raises(ValueError, match="unknown config keys"):
        run_train({**cfg, "max_step": 3})
