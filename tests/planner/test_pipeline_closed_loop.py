"""The trained planner in closed loop through the registry (`foresight eval closed_loop planner=vam`)
and the video-mode ablation (`foresight eval ablation`)."""

from __future__ import annotations

import json

import pytest
import torch

from foresight.cli import main
from foresight.planners import build_planner
from planner.action_model import load_vam


def test_closed_loop_runs_the_vam_planner_and_records_its_latency(speed_keeping_planner, tmp_path):
    out = tmp_path / "closed_loop"
    args = ["eval", "closed_loop", "planner=vam", f"checkpoint={speed_keeping_planner}", "suite=smoke", "episodes=1", "workers=1", "videos=0", f"out={out}",
            "vam.n_samples=2", "vam.aggregate=mean", "vam.device=cpu", "vam.precision=fp32"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["planner_config"] == {"checkpoint": str(speed_keeping_planner), "n_samples": 2, "aggregate": "mean", "device": "cpu", "precision": "fp32"}
    assert metrics["submetrics"]["failure_rate"] == 0.0, metrics["episodes"][0]
    # Keeping its speed on an empty straight road: no collision, the expert's progress. (Its few
    # training steps leave its samples noisy, so comfort and lane keeping are not judged here.)
    episode = metrics["episodes"][0]
    assert metrics["collision_rate"] == 0.0 and episode["ego_progress"] > 0.9 and episode["making_progress"] == 1.0
    assert metrics["plan_latency_ms_mean"] > 0 and metrics["episodes"][0]["plan_latency_ms_mean"] > 0
    # The camera renders at the planner's tokenizer input (32x64), so no frame is rescaled.
    assert (metrics["runner"]["image_height"], metrics["runner"]["image_width"]) == (32, 64)


def test_the_planner_options_reach_the_planner_and_a_rescaled_camera_is_named(speed_keeping_planner):
    from configs import compose
    from contract import EpisodeInfo
    from foresight.planners import planner_options
    from planner.vam import synthetic_observations

    cfg = compose("eval/closed_loop", ["planner=vam", f"checkpoint={speed_keeping_planner}", "out=o", "vam.n_samples=3", "vam.n_steps=2",
                                       "vam.aggregate=medoid", "vam.solver=midpoint", "vam.device=cpu", "vam.precision=bf16"])
    planner = build_planner("vam", planner_options("vam", cfg))
    inference = planner.config.inference
    assert (inference.n_samples, inference.n_steps, inference.aggregate, inference.solver) == (3, 2, "medoid", "midpoint")
    assert (planner.config.device, planner.config.precision, planner.camera_hw) == ("cpu", "bf16", (32, 64))
    planner.reset(EpisodeInfo("rescaled"))
    with pytest.warns(UserWarning, match="64x128 are downscaled x0.50 to the tokenizer's 32x64"):
        planner.plan(synthetic_observations(1, 64, 128, period_s=planner.config.frame_period_s)[0])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            build_planner("vam", {"checkpoint": str(speed_keeping_planner), "device": "cuda"})


def test_a_checkpoint_runs_in_imagine_mode_but_not_without_its_video(speed_keeping_planner):
    model = load_vam(speed_keeping_planner)
    imagine = model.with_video_mode("imagine", 1)
    assert imagine.config.video_mode == "imagine" and imagine.n_observed_frames == model.n_observed_frames - 1
    assert all((imagine.state_dict()[k] == v).all() for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="train one"):
        model.with_video_mode("none", 0)
    planner = build_planner("vam", {"checkpoint": str(speed_keeping_planner), "video_mode": "imagine", "n_imagined_frames": 1})
    assert planner.model.config.n_imagined_frames == 1


def test_ablation_writes_one_table_of_every_variant(speed_keeping_planner, trained_planner, tmp_path):
    out = tmp_path / "ablation"
    assert main(["eval", "ablation", f"checkpoint={speed_keeping_planner}", "suites=[smoke]", "episodes=2", "workers=1", f"out={out}"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["ablation"]) == {"observed", "imagine", "no_video", "constant_velocity"}
    for variant, per_suite in metrics["ablation"].items():
        row = per_suite["smoke"]
        assert set(row) >= {"score", "ncap_score", "collision_rate"} and row["ncap_score"] is None, variant
        assert 0.0 <= row["score"] <= 1.0
    assert all(per_suite["smoke"]["failure_rate"] == 0.0 for per_suite in metrics["ablation"].values()), metrics["ablation"]
    assert "same weights" in metrics["variants"]["imagine"] and "ego-status MLP" in metrics["variants"]["no_video"]
    table = (out / "ablation.md").read_text()
    assert all(f"| {v} |" in table for v in metrics["ablation"])
    assert (out / "runs" / "imagine" / "smoke" / "metrics.json").is_file()
    # Every row but observed is paired with observed episode by episode, with a standard error.
    assert set(metrics["paired_vs_observed"]) == {"imagine", "no_video", "constant_velocity"}
    imagine = metrics["paired_vs_observed"]["imagine"]["smoke"]
    assert imagine["metric"] == "score" and imagine["episodes"] == 2 and imagine["stderr"] >= 0.0
    rows = {v: metrics["ablation"][v]["smoke"] for v in ("imagine", "observed")}
    assert imagine["gain"] == pytest.approx(rows["imagine"]["score"] - rows["observed"]["score"])
    assert all(r["num_episodes"] == 2 and r["score_stderr"] is not None for r in rows.values())
    assert "vs observed" in table
    # A no-video checkpoint cannot be the main one; it is given as no_video_checkpoint instead.
    bad = ["eval", "ablation", f"checkpoint={speed_keeping_planner}", f"no_video_checkpoint={trained_planner / 'vam'}", "suites=[smoke]", "episodes=1", f"out={tmp_path / 'bad'}"]
    assert main(bad) == 1
