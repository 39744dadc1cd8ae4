"""`foresight bench sim`: simulator speed, with the same-run ratio against highway-env.

render_fps: camera frames/s at 288x512 with 8 vehicles (the render benchmark's road).
sim_steps_per_s: closed-loop physics steps/s (ego tracker + bicycle + IDM traffic) without rendering.
sim_render_steps_per_s: the same with a 288x512 camera frame rendered every step.
highway_env_steps_per_s: highway-env `highway-fast-v0` env.step + RGB env.render() per step (its
default 600x150 top-down view), measured in this run (its step-only rate, with its default
kinematics observation, is reported beside it); null with a reason if highway-env is not
installed (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from sim_eval.render.bench import benchmark_render
from sim_eval.render.camera import CameraRenderer
from sim_eval.render.camera_model import PinholeCamera
from sim_eval.scenarios.suites import build_scenario
from sim_eval.simulation import Simulation


def _sim_rate(steps: int, height: int, width: int, render: bool, scenario_key=("nominal", 6, 0)) -> float:
    """Physics steps/s following a constant-speed reference along the route (re-planned at 2 Hz)."""
    scenario = build_scenario(*scenario_key)
    camera = CameraRenderer(PinholeCamera.nuscenes_cam_front(height=height, width=width)) if render else None
    done = 0
    start = time.perf_counter()
    while done < steps:
        sim = Simulation(scenario)
        for step in range(int(scenario.duration_s / sim.dt_s)):
            if step % 5 == 0:
                ref = sim.replay_reference(scenario.ego_start.speed_mps)
            if camera is not None:
                camera.render(sim.render_scene())
            sim.step(ref)
            done += 1
            if done >= steps:
                break
    return done / (time.perf_counter() - start)


def _highway_env_rate(steps: int, seed: int = 0, render: bool = True) -> tuple[float | None, str | None]:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame: no display needed
    try:
        import gymnasium as gym
        import highway_env  # noqa: F401  (registers the environments)
    except ImportError as exc:
        return None, f"highway-env not installed ({exc}); pip install -e '.[bench]'"
    env = gym.make("highway-fast-v0", render_mode="rgb_array" if render else None)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    done = 0
    start = time.perf_counter()
    while done < steps:
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if render:
            env.render()
        done += 1
        if terminated or truncated:
            env.reset(seed=seed + done)
    rate = done / (time.perf_counter() - start)
    env.close()
    return rate, None


def run(cfg) -> dict[str, Any]:
    h, w = int(cfg.height), int(cfg.width)
    render = benchmark_render(n_frames=int(cfg.render_frames), height=h, width=w, n_vehicles=int(cfg.n_vehicles))
    out: dict[str, Any] = {
        "image_hw": [h, w],
        "render_fps": render["frames_per_s"],
        "render_ms_median": render["ms_per_frame_median"],
        "sim_steps_per_s": _sim_rate(int(cfg.sim_steps), h, w, render=False),
        "sim_render_steps_per_s": _sim_rate(int(cfg.sim_steps), h, w, render=True),
    }
    hw_rate, why = _highway_env_rate(int(cfg.highway_env_steps)) if cfg.highway_env else (None, "disabled (highway_env=false)")
    out["highway_env_steps_per_s"] = hw_rate
    if hw_rate is not None:
        out["highway_env_step_only_steps_per_s"] = _highway_env_rate(int(cfg.highway_env_steps), render=False)[0]
    out["ratio_vs_highway_env"] = None if hw_rate is None else out["sim_render_steps_per_s"] / hw_rate
    if why:
        out["highway_env_note"] = why
    print(json.dumps(out, indent=1))
    return out
