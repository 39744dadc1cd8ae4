"""`foresight eval closed_loop` and `foresight eval ablation`: the commands that put a planner from
the registry (foresight/planners.py) into the simulator's evaluation (sim_eval/evaluate.py,
sim_eval/ablation.py)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from configs import build, plain
from foresight.planners import BASELINES, planner_options, planner_source
from foresight.run_dir import integer_key, prepare_out_dir
from sim_eval.ablation import AblationVariant
from sim_eval.ablation import run_ablation as run_variants
from sim_eval.evaluate import ClosedLoopRun, evaluate
from sim_eval.runner import RunnerConfig


def runner_config(section: Any, checkpoint: str | None) -> RunnerConfig:
    """The `runner` section; camera_period_s null becomes a vam export's frame period (its world
    model's frame rate: 0.2 s at 5 Hz), or one frame per plan without an export."""
    runner = build(RunnerConfig, section, "runner")
    if runner.camera_period_s is None and checkpoint:
        from planner.action_model.checkpoint import load_vam_export

        runner = dataclasses.replace(runner, camera_period_s=load_vam_export(checkpoint).frame_period_s)
    return runner


def batch_size(value: Any, name: str, options: dict[str, Any], episodes: int, workers: int) -> int:
    """`batch_size` of configs/eval/closed_loop.yaml: a number, or auto: every episode in one
    lockstep batch when the learned planner runs on CUDA, one batch per worker process on CPU, and
    1 for the baselines and the ego MLP (they plan in microseconds: processes beat batching)."""
    if str(value) != "auto":
        if int(value) < 1:
            raise ValueError(f"batch_size must be >= 1 or auto, got {value!r}")
        return int(value)
    if name != "vam":
        return 1
    if str(options.get("device") or "cpu").startswith("cuda"):
        return max(1, episodes)
    return max(1, math.ceil(episodes / max(1, workers)))


def run_closed_loop(cfg: Any) -> ClosedLoopRun:
    """Run `cfg.planner` on `cfg.suite` (configs/eval/closed_loop.yaml); writes out/metrics.json."""
    d = plain(cfg)
    name = str(d["planner"])
    episodes, seed, workers, videos = _counts(d)
    options = planner_options(name, d)
    runner = runner_config(d["runner"], options.get("checkpoint") if name == "vam" else None)
    batch = batch_size(d["batch_size"], name, options, episodes, workers)
    source = planner_source(name, options)
    source.make()  # a bad name or checkpoint fails before the output dir is touched
    out = prepare_out_dir(d["out"], d["overwrite"])
    run = evaluate(source, d["suite"], episodes, seed, out, runner, workers, videos, batch)
    m = run.metrics
    print(
        f"{name} on {run.suite} ({run.num_episodes} episodes): score {m.score:.3f}"
        + (f", NCAP {m.ncap_score:.2f}/5" if m.ncap_score is not None else "")
        + f", collision rate {m.collision_rate:.2f}; wrote {Path(d['out']) / 'metrics.json'}"
    )
    return run


def _counts(d: dict[str, Any]) -> tuple[int, int, int, int]:
    """episodes (>= 1), seed (>= 0), workers (>= 1) and videos (>= 0) of an eval command, validated."""
    return (integer_key(d, "episodes", 1), integer_key(d, "seed", 0), integer_key(d, "workers", 1),
            integer_key(d, "videos", 0))


def ablation_variants(d: dict[str, Any]) -> list[AblationVariant]:
    """The rows for configs/eval/ablation.yaml: observed (the checkpoint as trained); imagine (an
    imagine-trained `imagine_checkpoint`, else the same weights run in imagine mode with
    `n_imagined_frames` greedy frames, which the expert was not trained on: what the row measures);
    no_video (a `no_video_checkpoint` trained with video_mode=none, else the ego-status MLP exported
    beside the checkpoint: a video expert cannot simply drop its video); then the `baselines`."""
    from planner.action_model.checkpoint import vam_metadata
    from planner.ego_mlp import has_ego_mlp

    checkpoint = str(d["checkpoint"])
    mode = vam_metadata(checkpoint)["action_model"]["video_mode"]
    if mode == "none":
        raise ValueError(f"{checkpoint} is a no-video model; the ablation needs a video checkpoint (pass it as no_video_checkpoint=)")
    episodes, seed, workers, _ = _counts(d)
    vam_options = {**planner_options("vam", {"vam": d["vam"]}), "seed": seed}  # the vam.* section: device, precision, ...

    def row(name: str, planner: str, options: dict[str, Any], description: str) -> AblationVariant:
        batch = batch_size(d["batch_size"], planner, options, episodes, workers)
        return AblationVariant(name, planner_source(planner, options), description, batch)

    rows = [row("observed", "vam", {**vam_options, "checkpoint": checkpoint}, f"{checkpoint} (trained video_mode={mode})")]
    imagine = d.get("imagine_checkpoint")
    if imagine:
        rows.append(row("imagine", "vam", {**vam_options, "checkpoint": str(imagine)}, f"{imagine} (trained in imagine mode)"))
    else:
        n = integer_key(d, "n_imagined_frames", 1)
        options = {**vam_options, "checkpoint": checkpoint, "video_mode": "imagine", "n_imagined_frames": n}
        rows.append(row("imagine", "vam", options, f"{checkpoint} run in imagine mode ({n} imagined frame(s), same weights)"))
    no_video = d.get("no_video_checkpoint")
    if no_video:
        if vam_metadata(no_video)["action_model"]["video_mode"] != "none":
            raise ValueError(f"no_video_checkpoint {no_video} was not trained with video_mode=none")
        rows.append(row("no_video", "vam", {**vam_options, "checkpoint": str(no_video)}, f"{no_video} (trained with video_mode=none)"))
    elif has_ego_mlp(checkpoint):
        rows.append(row("no_video", "ego_mlp", {"checkpoint": checkpoint}, f"ego-status MLP exported with {checkpoint}"))
    else:
        raise ValueError(f"{checkpoint} holds no ego_mlp.*; pass no_video_checkpoint= (a model trained with video_mode=none)")
    for name in d["reference_baselines"]:
        if name not in BASELINES:
            raise ValueError(f"eval ablation: reference_baselines may name {BASELINES}, got {name!r}")
        rows.append(row(str(name), str(name), dict(d["baselines"][name]), "baseline"))
    return rows


def run_ablation(cfg: Any) -> dict[str, Any]:
    """`foresight eval ablation` (configs/eval/ablation.yaml); returns out/metrics.json's content."""
    d = plain(cfg)
    episodes, seed, workers, videos = _counts(d)
    runner = runner_config(d["runner"], str(d["checkpoint"]))
    suites = [str(s) for s in d["suites"]]
    variants = ablation_variants(d)
    out = prepare_out_dir(d["out"], d["overwrite"])
    return run_variants(variants, suites, episodes, seed, out, runner, workers, videos)
