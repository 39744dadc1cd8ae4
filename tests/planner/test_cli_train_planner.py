"""`foresight train planner` end to end on the tiny pipeline: what it writes, exact resume from
last.ckpt, the frozen world model, the video modes and clear errors for bad inputs."""

from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from configs import compose
from contract import EpisodeInfo, validate_plan
from foresight.cli import main
from foresight.planners import build_planner
from planner.action_model import load_vam, vam_metadata
from planner.train import run_train_planner
from planner.vam import VAMPlanner, synthetic_observations
from sim_eval.evaluate import VideoRecorder
from sim_eval.scenarios.suites import build_scenario
from sim_eval.simulation import Simulation
from tests.planner.conftest import TRAIN_STEPS, train_args
from tests.training.probe import TrainerProbe
from world_model.artifact import WorldModelMeta, export_world_model, load_world_model
from world_model.tokenizer import export_tokenizer, load_image_tokenizer
from world_model.tokenizer.model import ConvTokenizer, tokenizer_config


def train_losses(out) -> dict[int, float]:
    """{step: train/loss} from every CSV log version of a run directory."""
    losses = {}
    for path in sorted(out.glob("logs/version_*/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("train/loss"):
                    losses[int(row["step"])] = float(row["train/loss"])
    return losses


def test_training_writes_logs_plots_and_a_self_contained_planner(trained_planner, tiny_pipeline):
    out = trained_planner
    assert sorted(train_losses(out)) == list(range(TRAIN_STEPS))
    with open(next(out.glob("logs/version_*/metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    val_rows = [r for r in rows if r.get("val/min_ade")]
    assert len(val_rows) == TRAIN_STEPS // 2 and all(float(r["val/l2_3s"]) >= 0 for r in val_rows)
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == ["step_000002.png", "step_000004.png"]
    assert (out / "checkpoints" / "last.ckpt").is_file()

    vam = out / "vam"
    meta = vam_metadata(vam)
    tokenizer_sha = load_image_tokenizer(tiny_pipeline.tokenizer).identity["weights_sha256"]
    assert meta["tokenizer"]["weights_sha256"] == tokenizer_sha
    assert meta["extra"]["tokenizer_path"] == "tokenizer.safetensors" and meta["extra"]["frame_period_s"] == 0.5
    assert meta["extra"]["steps"] == TRAIN_STEPS and meta["extra"]["inference"] == {"n_steps": 10, "solver": "euler", "n_samples": 16, "aggregate": "cautious"}
    # The tokenizer travels with the planner: the directory alone is enough, moved anywhere.
    assert load_image_tokenizer(vam).identity["weights_sha256"] == tokenizer_sha
    # The world model stayed frozen: its weights in the export are the input's, bit for bit.
    exported = load_vam(vam)
    original = load_world_model(tiny_pipeline.world_model).model
    for name, tensor in original.state_dict().items():
        assert torch.equal(exported.world_model.state_dict()[name], tensor), name

    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == TRAIN_STEPS and summary["world_model_frozen"] and summary["val_windows"] > 0
    assert set(summary["val_open_loop"]) == {"vam", "ego_mlp", "constant_velocity"}
    assert all(summary["val_open_loop"][p]["min_ade"] >= 0 for p in summary["val_open_loop"])

    # The registry's "vam" planner loads it with its tokenizer and plans on the runner's 64x128 camera.
    planner = build_planner("vam", {"checkpoint": str(vam)})
    assert planner.image_hw == (32, 64)
    planner.reset(EpisodeInfo("test"))
    plan = planner.plan(synthetic_observations(1, height=64, width=128)[0])
    assert plan.waypoints.shape == (6, 2) and np.isfinite(plan.waypoints).all() and plan.extras["total_ms"] > 0
    assert validate_plan(plan, 6, 0.5, max_abs_m=1e9, max_speed_mps=1e9) is None
    assert planner.predicted_frame is None  # only rollout videos ask for predicted frames

    # Rollout videos: camera | the world model's predicted next frame | bird's-eye view.
    assert planner.predicts_frames
    recorder = VideoRecorder(height=36, width=64, planner=planner)
    planner.plan(synthetic_observations(1, height=64, width=128)[0])
    assert planner.predicted_frame.shape == (32, 64, 3) and planner.predicted_frame.dtype == np.uint8
    assert planner.predicted_frame.std() > 0  # a decoded image, not a blank panel
    recorder(Simulation(build_scenario("smoke", 0, 0)), None)
    assert recorder.frames[0].shape == (36, 64 + 2 + 64 + 2 + 36, 3)
    np.testing.assert_array_equal(recorder.frames[0][:, 66:130], cv2.resize(planner.predicted_frame, (64, 36), interpolation=cv2.INTER_NEAREST))


def test_python_and_the_cli_registry_load_the_same_planner(trained_planner):
    """`VAMPlanner.from_checkpoint` is the one builder: the registry (what `foresight eval` and
    `serve` use) gives the same planner, with the export's inference settings and frame period."""
    vam = trained_planner / "vam"
    in_python, via_registry = VAMPlanner.from_checkpoint(vam), build_planner("vam", {"checkpoint": str(vam)})
    assert in_python.config == via_registry.config
    assert in_python.config.inference.n_samples == 16 and in_python.config.inference.aggregate == "cautious"
    assert in_python.config.frame_period_s == 0.5 and in_python.plan_dt_s == 0.5 and in_python.num_waypoints == 6
    observations = synthetic_observations(3, height=64, width=128)
    for planner in (in_python, via_registry):
        planner.reset(EpisodeInfo("same"))
    for observation in observations:
        np.testing.assert_array_equal(in_python.plan(observation).waypoints, via_registry.plan(observation).waypoints)


def test_rerun_resumes_from_last_checkpoint_and_continues_exactly(trained_planner, tiny_pipeline, tmp_path):
    # A run killed after step 2: its last.ckpt is the step-2 checkpoint. Rerunning the command continues.
    (step2,) = (trained_planner / "checkpoints").glob("*step=2.ckpt")
    (tmp_path / "checkpoints").mkdir()
    shutil.copyfile(step2, tmp_path / "checkpoints" / "last.ckpt")
    assert main(train_args(tiny_pipeline, tmp_path)) == 0
    first, resumed = train_losses(trained_planner), train_losses(tmp_path)
    assert sorted(resumed) == [2, 3]
    assert [resumed[s] for s in (2, 3)] == [first[s] for s in (2, 3)]  # same batches, same noise: bit-exact
    for name in ("vam.json", "ego_mlp.json"):
        a, b = (json.loads((d / "vam" / name).read_text())["weights_sha256"] for d in (trained_planner, tmp_path))
        assert a == b, name


@pytest.mark.parametrize("mode", ["imagine", "none"])
def test_other_video_modes_train_and_export(mode, tiny_pipeline, tmp_path):
    extra = ["planner.train.max_steps=2", f"planner.action_model.video_mode={mode}"]
    if mode == "imagine":  # teacher-forced imagined frame; the world model fine-tuned at its own LR
        extra += ["planner.action_model.n_imagined_frames=1", "planner.train.world_model_lr=1e-2"]
    else:
        extra += ["tokenizer=null"]
    assert main(train_args(tiny_pipeline, tmp_path, *extra)) == 0
    model = load_vam(tmp_path / "vam")
    assert model.config.video_mode == mode
    if mode == "imagine":
        assert model.config.n_imagined_frames == 1 and model.n_observed_frames == 2
        original = load_world_model(tiny_pipeline.world_model).model.state_dict()
        assert not all(torch.equal(model.world_model.state_dict()[k], v) for k, v in original.items())
        assert not json.loads((tmp_path / "train_summary.json").read_text())["world_model_frozen"]
    else:
        assert model.world_model is None and "world_model.token_emb.weight" not in load_file(str(tmp_path / "vam" / "vam.safetensors"))
        plan = build_planner("vam", {"checkpoint": str(tmp_path / "vam")}).plan(synthetic_observations(1, 64, 128)[0])
        assert plan.extras["encode_ms"] == 0.0


def test_missing_or_mismatched_inputs_are_clear_errors(tiny_pipeline, tmp_path, capsys):
    p = tiny_pipeline
    assert main(["train", "planner", f"tokenizer={p.tokenizer}", f"clips={p.clips}", f"tokens={p.tokens}", f"out={tmp_path / 'a'}"]) == 1
    assert "`world_model=PATH` is required" in capsys.readouterr().err
    torch.manual_seed(1)
    export_tokenizer(ConvTokenizer(tokenizer_config("tiny", base_channels=8)), tmp_path / "other_tokenizer")
    args = train_args(p, tmp_path / "b")
    args[3] = f"tokenizer={tmp_path / 'other_tokenizer'}"
    assert main(args) == 1
    assert "another tokenizer" in capsys.readouterr().err
    assert main([*train_args(p, tmp_path / "c"), "planner.train.not_a_key=1"]) == 2
    # The planner observes frames at its world model's rate: a 5 Hz model needs a 5 Hz (or 10 Hz) store.
    loaded = load_world_model(p.world_model)
    export_world_model(loaded.model, tmp_path / "wm_5hz", WorldModelMeta(fps=5.0, tokenizer=loaded.meta.tokenizer))
    args = train_args(p, tmp_path / "d")
    args[2] = f"world_model={tmp_path / 'wm_5hz'}"
    assert main(args) == 1
    assert "frames every 0.2 s" in capsys.readouterr().err


def test_init_from_starts_from_an_exported_planner(trained_planner, tiny_pipeline, tmp_path):
    # One step at a vanishing LR: the result is the exported planner it started from.
    assert main(train_args(tiny_pipeline, tmp_path, f"init_from={trained_planner / 'vam'}", "planner.train.max_steps=1", "planner.train.lr=1e-12")) == 0
    start, result = load_vam(trained_planner / "vam"), load_vam(tmp_path / "vam")
    for name, tensor in start.expert.state_dict().items():
        torch.testing.assert_close(result.expert.state_dict()[name], tensor, atol=1e-6, rtol=0)
    assert main(train_args(tiny_pipeline, tmp_path / "bad", f"init_from={trained_planner / 'vam'}", "planner.action_model.expert_width_ratio=0.5")) == 1


def test_training_honours_the_trainer_group(tiny_pipeline, tmp_path, monkeypatch):
    monkeypatch.setattr("foresight.training.precision.cpu_has_native_bf16", lambda: False)  # an AVX2-only CPU
    probe = TrainerProbe()
    args = train_args(tiny_pipeline, tmp_path, "planner.train.max_steps=2", "trainer.strategy=ddp", "trainer.precision=auto")
    summary = run_train_planner(compose("train/planner", args[2:]), [probe])
    assert probe.seen == {"strategy": "DDPStrategy", "devices": 1, "world_size": 1, "precision": "32-true"} and summary["precision"] == "32-true"
