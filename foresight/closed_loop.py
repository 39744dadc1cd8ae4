"""`foresight eval closed_loop` and `foresight eval ablation`: the commands that put a planner from
the registry (foresight/planners.py: a registry name or a plug-in's `package.module:ClassName`)
into the simulator's evaluation (sim_eval/evaluate.py, sim_eval/ablation.py)."""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path
from typing import Any

from configs import build, plain
from foresight.planners import BASELINES, is_plugin, planner_batched, planner_options, planner_source, plugin_planner_class, plugin_takes_option
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


def batch_size(value: Any, batched: bool, options: dict[str, Any], episodes: int, workers: int) -> int:
    """`batch_size` of configs/eval/closed_loop.yaml: a number, or auto: for a planner that declares
    `batched` (`planner_batched`), every episode in one lockstep batch when it runs on CUDA
    (`options["device"]`) and one batch per worker process elsewhere; 1 for the others (the
    baselines and the ego MLP plan in microseconds: processes beat batching)."""
    if str(value) != "auto":
        if int(value) < 1:
            raise ValueError(f"batch_size must be >= 1 or auto, got {value!r}")
        return int(value)
    if not batched:
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
    source = planner_source(name, options)
    planner = source.make()  # a bad name, import string or checkpoint fails before the output dir is touched
    batch = batch_size(d["batch_size"], planner.batched, options, episodes, workers)
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


VIDEO_MODE_ROWS = (("observed", "observed"), ("imagine", "imagine"), ("no_video", "none"))  # (row, video_mode)


def ablation_variants(d: dict[str, Any]) -> list[AblationVariant]:
    """The rows for configs/eval/ablation.yaml. For planner=vam: observed (the checkpoint as
    trained); imagine (an imagine-trained `imagine_checkpoint`, else the same weights run in imagine
    mode with `n_imagined_frames` greedy frames, which the expert was not trained on: what the row
    measures); no_video (a `no_video_checkpoint` trained with video_mode=none, else the ego-status
    MLP exported beside the checkpoint: a video expert cannot simply drop its video). For a plug-in
    planner (`package.module:ClassName`): the class built with its `planner_options` plus
    video_mode=observed, imagine and none. Then the `reference_baselines`."""
    episodes, seed, workers, _ = _counts(d)

    def row(name: str, planner: str, options: dict[str, Any], description: str) -> AblationVariant:
        source = planner_source(planner, options)
        batch = batch_size(d["batch_size"], planner_batched(planner), options, episodes, workers)
        return AblationVariant(name, source, description, batch)

    name = str(d.get("planner") or "vam")
    if is_plugin(name):
        rows = _plugin_rows(d, name, row)
    elif name == "vam":
        rows = _vam_rows(d, seed, row)
    else:
        raise ValueError(f"eval ablation runs one planner with observed, imagined and no video: planner=vam (with checkpoint=) "
                         f"or a plug-in planner (`package.module:ClassName`) that takes a video_mode option; {name!r} has no "
                         "video mode (baselines go in reference_baselines)")
    for ref in d["reference_baselines"]:
        if ref not in BASELINES:
            raise ValueError(f"eval ablation: reference_baselines may name {BASELINES}, got {ref!r}")
        rows.append(row(str(ref), str(ref), dict(d["baselines"][ref]), "baseline"))
    return rows


def _plugin_rows(d: dict[str, Any], spec: str, row: Any) -> list[AblationVariant]:
    """A plug-in planner's observed / imagine / no_video rows: its options plus video_mode."""
    for key in ("imagine_checkpoint", "no_video_checkpoint"):
        if d.get(key):
            raise ValueError(f"eval ablation: {key}= is read for planner=vam only; a plug-in planner's rows are its own class "
                             "run with video_mode=observed, imagine and none")
    options = planner_options(spec, d)
    if "video_mode" in options:
        raise ValueError("eval ablation sets video_mode itself (observed, imagine, none); drop planner_options.video_mode")
    cls = plugin_planner_class(spec)
    if not plugin_takes_option(cls, "video_mode"):
        raise ValueError(f"eval ablation runs the planner with video_mode=observed, imagine and none, which only planners that take a "
                         f"video mode can do; {spec!r} takes no video_mode option (its constructor: {cls.__qualname__}"
                         f"{inspect.signature(cls)}). Evaluate it with `foresight eval closed_loop planner={spec}` instead")
    shown = f" and planner_options {options}" if options else ""
    return [row(name, spec, {**options, "video_mode": mode}, f"{spec} with video_mode={mode}{shown}") for name, mode in VIDEO_MODE_ROWS]


def _vam_rows(d: dict[str, Any], seed: int, row: Any) -> list[AblationVariant]:
    """planner=vam's rows from `checkpoint` (and the optional imagine / no-video checkpoints)."""
    from planner.action_model.checkpoint import vam_metadata
    from planner.ego_mlp import has_ego_mlp

    planner_options("vam", d)  # refuses planner_options given to vam
    if not d.get("checkpoint"):
        raise ValueError("eval ablation: planner=vam needs checkpoint=<exported planner directory> (OUT/vam of `foresight train planner`)")
    checkpoint = str(d["checkpoint"])
    mode = vam_metadata(checkpoint)["action_model"]["video_mode"]
    if mode == "none":
        raise ValueError(f"{checkpoint} is a no-video model; the ablation needs a video checkpoint (pass it as no_video_checkpoint=)")
    vam_options = {**planner_options("vam", {"vam": d["vam"]}), "seed": seed}  # the vam.* section: device, precision, ...
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
    return rows


def run_ablation(cfg: Any) -> dict[str, Any]:
    """`foresight eval ablation` (configs/eval/ablation.yaml); returns out/metrics.json's content."""
    d = plain(cfg)
    episodes, seed, workers, videos = _counts(d)
    suites = [str(s) for s in d["suites"]]
    variants = ablation_variants(d)  # a bad planner or checkpoint fails before the runner reads the checkpoint
    vam = not is_plugin(str(d.get("planner") or "vam"))
    runner = runner_config(d["runner"], str(d["checkpoint"]) if vam else None)
    out = prepare_out_dir(d["out"], d["overwrite"])
    return run_variants(variants, suites, episodes, seed, out, runner, workers, videos)
