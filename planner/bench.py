"""`foresight bench planner`: per-call latency of the VAM planner, printed as one JSON object.

    foresight bench planner [checkpoint=VAM_DIR] [device=cuda] [experiment=tiny|S|B|L]

With a checkpoint, its model and tokenizer are timed. Without one (checkpoint=null), a randomly
initialised model is built from the experiment's profiles (tokenizer.size / model, world_model.size
/ model / n_frames / fps, planner.action_model) at the camera size image_height x image_width, so
the benchmark runs anywhere; latency does not depend on the weights' values. Observations carry
frames at the model's frame period (the checkpoint's, or 1 / world_model.fps).

Timings (`planner.vam.benchmark_planner`): median per-call encode_ms (tokenizer, one new frame per
call after warm-up), context_ms (world-model pass filling the video keys/values), flow_ms (10 Euler
steps of the action expert), total_ms, the same with 1 step, and ratio_10step_vs_1step.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

import torch

from planner.action_model.checkpoint import frame_period_s as checkpoint_frame_period_s
from planner.vam import VAMPlanner, VAMPlannerConfig, benchmark_planner, synthetic_observations


def random_planner(cfg: Mapping[str, Any], config: VAMPlannerConfig) -> VAMPlanner:
    """A VAMPlanner with random weights sized by the experiment's profiles (see the module docstring)."""
    from planner.action_model.config import ActionModelConfig
    from planner.action_model.model import VideoActionModel
    from world_model.gpt.config import gpt_config
    from world_model.tokenizer.model import ConvTokenizer, tokenizer_config

    tokenizer_section = cfg.get("tokenizer") or {}
    world_section = cfg.get("world_model") or {}
    planner_section = cfg.get("planner") or {}
    torch.manual_seed(int(cfg.get("seed", 0)))
    tokenizer = ConvTokenizer(tokenizer_config(str(tokenizer_section.get("size", "tiny")), **dict(tokenizer_section.get("model") or {}))).eval()
    height, width = int(cfg["image_height"]), int(cfg["image_width"])
    factor = tokenizer.downsample_factor
    if height % factor or width % factor:
        raise ValueError(f"bench planner: image {height}x{width} is not a multiple of the tokenizer's downsampling factor {factor}")
    gpt = gpt_config(str(world_section.get("size", "tiny")), vocab_size=tokenizer.codebook_size, tokens_h=height // factor, tokens_w=width // factor,
                     max_frames=int(world_section.get("n_frames", 4)), **dict(world_section.get("model") or {}))
    action = ActionModelConfig.from_dict(dict(planner_section.get("action_model") or {}))
    return VAMPlanner(VideoActionModel(gpt, action), tokenizer, config)


def run_bench(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Time the planner on a stream of synthetic observations; prints and returns the JSON object."""
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    checkpoint = cfg.get("checkpoint")
    started = time.perf_counter()
    if checkpoint:
        from planner.registry import load_vam_with_tokenizer

        model, tokenizer, meta = load_vam_with_tokenizer(str(checkpoint), cfg.get("tokenizer"))
        frame_period_s = checkpoint_frame_period_s(meta)
    else:
        fps = (cfg.get("world_model") or {}).get("fps")
        frame_period_s = 1.0 / float(fps) if fps else 0.5
    config = VAMPlannerConfig(n_steps=10, device=str(cfg.get("device", "cpu")), precision=str(cfg.get("precision", "fp32")), seed=int(cfg.get("seed", 0)),
                              frame_period_s=frame_period_s, frame_tolerance_s=min(0.1, 0.4 * frame_period_s))
    planner = VAMPlanner(model, tokenizer, config) if checkpoint else random_planner(cfg, config)
    # Frames at the model's spacing, as a runner with camera_period_s = frame_period_s gives them.
    observations = synthetic_observations(int(cfg.get("observations", 10)), int(cfg["image_height"]), int(cfg["image_width"]), seed=int(cfg.get("seed", 0)),
                                          n_frames=int(cfg.get("n_frames", 4)), period_s=frame_period_s)
    result = benchmark_planner(planner, observations, warmup=int(cfg.get("warmup", 2)), rounds=int(cfg.get("rounds", 2)))
    result.update(
        checkpoint=None if not checkpoint else str(checkpoint),
        image_hw=[int(cfg["image_height"]), int(cfg["image_width"])],
        frame_period_s=frame_period_s,
        torch_threads=torch.get_num_threads(),
        wall_s=round(time.perf_counter() - started, 2),
    )
    print(json.dumps(result))
    return result
