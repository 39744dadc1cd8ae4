"""`foresight bench planner`: per-call latency of the VAM planner, printed as one JSON object.

    foresight bench planner [checkpoint=VAM_DIR] [device=cuda] [experiment=tiny|S|B|L]

With a checkpoint, its model and tokenizer are timed. Without one (checkpoint=null), a randomly
initialised model is built from the experiment's profiles (tokenizer.size / model, world_model.size
/ model / n_frames / fps, planner.action_model) at the camera size image_height x image_width, so
the benchmark runs anywhere; latency does not depend on the weights' values. Observations carry
frames at the model's frame period (the checkpoint's, or 1 / world_model.fps).

Timings (`planner.vam.benchmark_planner`): median per-call encode_ms (tokenizer, one new frame per
call after warm-up), context_ms (world-model pass filling the video keys/values), flow_ms (10 Euler
steps of the action expert), total_ms, the same with 1 step, and ratio_10step_vs_1step; then for
each of `batch_sizes`, plans_per_s_batch<N> and plan_batch_ms_batch<N>: N episodes planned by one
`plan_batch` call per observation, as the batched closed loop asks (`planner.vam.benchmark_plan_batch`).
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

import torch

from configs import plain
from planner.inference import InferenceSettings
from planner.vam import VAMPlanner, VAMPlannerConfig, benchmark_plan_batch, benchmark_planner, synthetic_observations


def random_planner(cfg: Mapping[str, Any], config: VAMPlannerConfig) -> VAMPlanner:
    """A VAMPlanner with random weights sized by the experiment's profiles (see the module docstring)."""
    from planner.action_model.config import ActionModelConfig
    from planner.action_model.model import VideoActionModel
    from world_model.gpt.config import gpt_config
    from world_model.tokenizer.model import ConvTokenizer, tokenizer_config

    tokenizer_section, world_section, planner_section = cfg["tokenizer"], cfg["world_model"], cfg["planner"]
    torch.manual_seed(int(cfg["seed"]))
    tokenizer = ConvTokenizer(tokenizer_config(str(tokenizer_section["size"]), **dict(plain(tokenizer_section["model"]) or {}))).eval()
    height, width = int(cfg["image_height"]), int(cfg["image_width"])
    factor = tokenizer.downsample_factor
    if height % factor or width % factor:
        raise ValueError(f"bench planner: image {height}x{width} is not a multiple of the tokenizer's downsampling factor {factor}")
    gpt = gpt_config(str(world_section["size"]), vocab_size=tokenizer.codebook_size, tokens_h=height // factor, tokens_w=width // factor,
                     max_frames=int(world_section["n_frames"]), **dict(plain(world_section["model"]) or {}))
    action = ActionModelConfig.from_dict(dict(planner_section["action_model"]))
    return VAMPlanner(VideoActionModel(gpt, action), tokenizer, config)


def run_bench(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Time the planner on a stream of synthetic observations; prints and returns the JSON object."""
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    checkpoint = cfg["checkpoint"]
    started = time.perf_counter()
    device, precision, seed = str(cfg["device"]), str(cfg["precision"]), int(cfg["seed"])
    if checkpoint:  # as exported, timed at 1 sample (benchmark_planner times 10 and 1 Euler steps)
        planner = VAMPlanner.from_checkpoint(str(checkpoint), n_samples=1, aggregate="first", seed=seed, device=device, precision=precision)
    else:
        fps = cfg["world_model"]["fps"]
        frame_period_s = 1.0 / float(fps) if fps else 0.5
        inference = InferenceSettings(n_steps=10, solver="euler", n_samples=1, aggregate="first")
        planner = random_planner(cfg, VAMPlannerConfig(inference, seed, frame_period_s, device, precision))
    frame_period_s = planner.config.frame_period_s
    # Frames at the model's spacing, as a runner with camera_period_s = frame_period_s gives them.
    observations = synthetic_observations(int(cfg["observations"]), int(cfg["image_height"]), int(cfg["image_width"]), seed=seed,
                                          n_frames=int(cfg["n_frames"]), period_s=frame_period_s)
    result = benchmark_planner(planner, observations, warmup=int(cfg["warmup"]), rounds=int(cfg["rounds"]))
    for batch in cfg["batch_sizes"]:
        timed = benchmark_plan_batch(planner, observations, int(batch), warmup=int(cfg["warmup"]))
        result.update({f"plans_per_s_batch{int(batch)}": timed["plans_per_s"], f"plan_batch_ms_batch{int(batch)}": timed["plan_batch_ms"]})
    result.update(
        checkpoint=None if not checkpoint else str(checkpoint),
        image_hw=[int(cfg["image_height"]), int(cfg["image_width"])],
        frame_period_s=frame_period_s,
        torch_threads=torch.get_num_threads(),
        wall_s=round(time.perf_counter() - started, 2),
    )
    print(json.dumps(result))
    return result
