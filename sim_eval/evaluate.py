"""`foresight eval closed_loop`: run a planner on a scenario suite, in parallel, and report.

Writes DIR/metrics.json (score, ncap_score, collision_rate, submetrics, episodes, plus the config and
planner latency), DIR/episodes.csv (one row per run) and DIR/videos/*.mp4 (camera + bird's-eye view)
for the first `videos` episodes.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from data.convert import progress_bar
from planner.registry import build_planner
from sim_eval.metrics.aggregate import aggregate
from sim_eval.metrics.scenario_score import ScenarioScore
from sim_eval.render.bev import BevRenderer
from sim_eval.render.camera import CameraRenderer
from sim_eval.render.camera_model import PinholeCamera
from sim_eval.render.video import side_by_side, write_video
from sim_eval.runner import RunnerConfig, episode_id, expert_run, run_episode
from sim_eval.scenarios.suites import build_scenario, suite_names, suite_size
from sim_eval.simulation import Simulation


@dataclass(frozen=True)
class EpisodeSpec:
    suite: str
    index: int
    seed: int
    record_video: bool = False


def episode_specs(suite: str, episodes: int, seed: int, videos: int) -> list[EpisodeSpec]:
    """`episodes` runs cycling through the suite's scenarios; each new cycle uses the next seed."""
    if suite not in suite_names():
        raise ValueError(f"unknown suite {suite!r}; known: {', '.join(suite_names())}")
    n = suite_size(suite)
    return [EpisodeSpec(suite, k % n, seed + k // n, k < videos) for k in range(episodes)]


class VideoRecorder:
    """Camera view beside a bird's-eye view with the current plan, one frame per physics step. With a
    planner that predicts frames (a world-model planner with `predict_next_frame`), its latest
    predicted frame goes between the two (camera | predicted | bird's-eye view)."""

    def __init__(self, height: int = 144, width: int = 256, planner: Any = None) -> None:
        self.camera = CameraRenderer(PinholeCamera.nuscenes_cam_front(height=height, width=width))
        self.bev = BevRenderer(size_px=height, extent_m=60.0)
        self.frames: list[np.ndarray] = []
        self.planner = planner
        self.size_hw = (height, width)
        if planner is not None and hasattr(planner, "predict_next_frame"):
            planner.predict_next_frame = True

    def __call__(self, sim: Simulation, plan_world: np.ndarray | None) -> None:
        scene = sim.render_scene()
        traj = {"plan": plan_world} if plan_world is not None else None
        panels = [self.camera.render(scene)]
        if self.planner is not None and hasattr(self.planner, "predict_next_frame"):
            predicted = getattr(self.planner, "predicted_frame", None)
            h, w = self.size_hw
            panels.append(np.zeros((h, w, 3), np.uint8) if predicted is None else cv2.resize(predicted, (w, h), interpolation=cv2.INTER_NEAREST))
        panels.append(self.bev.render(scene, trajectories=traj))
        self.frames.append(side_by_side(*panels, gap_px=2))


def _limit_threads(n: int) -> None:
    """Episode workers share the cores: n math-library threads each (not one per core each)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def run_one(planner_name: str, planner_cfg: dict[str, Any], spec: EpisodeSpec, runner_cfg: RunnerConfig, video_dir: str | None) -> dict[str, Any]:
    """Run one episode in this process; returns the score and latency (picklable)."""
    planner = build_planner(planner_name, planner_cfg)
    scenario = build_scenario(spec.suite, spec.index, spec.seed)
    progress = expert_run(spec.suite, spec.index, spec.seed, runner_cfg.dt_s)[2]
    recorder = VideoRecorder(planner=planner) if spec.record_video and video_dir else None
    result = run_episode(scenario, planner, runner_cfg, expert_progress_m=progress, on_step=recorder)
    video_path = None
    if recorder is not None and recorder.frames:
        name = episode_id(spec.suite, spec.index, spec.seed).replace("/", "_")
        video_path = str(write_video(recorder.frames, Path(video_dir) / f"{name}.mp4", fps=1.0 / runner_cfg.dt_s))
    lat = result.plan_latency_ms
    return {
        "score": result.score,
        "plan_latency_ms_mean": float(np.mean(lat)) if lat else None,
        "plan_latency_ms_max": float(np.max(lat)) if lat else None,
        "video": video_path,
        "maneuver": scenario.goal.maneuver,
    }


def evaluate(
    planner_name: str,
    suite: str,
    episodes: int,
    seed: int,
    out: str | Path,
    planner_cfg: dict[str, Any] | None = None,
    runner_cfg: RunnerConfig = RunnerConfig(),
    workers: int = 1,
    videos: int = 0,
) -> dict[str, Any]:
    """Run the suite and write metrics.json / episodes.csv / videos; returns the metrics dict."""
    planner_cfg = dict(planner_cfg or {})
    build_planner(planner_name, planner_cfg)  # fail fast on a bad name or checkpoint
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = episode_specs(suite, episodes, seed, videos)
    video_dir = str(out / "videos") if videos else None
    rows: list[dict[str, Any] | None] = [None] * len(specs)
    t0 = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task(f"{planner_name} on {suite}", total=len(specs))
        if workers <= 1:
            for i, spec in enumerate(specs):
                rows[i] = run_one(planner_name, planner_cfg, spec, runner_cfg, video_dir)
                progress.advance(task)
        else:
            ctx = multiprocessing.get_context("spawn")
            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_limit_threads, initargs=(threads,)) as pool:
                futures = {pool.submit(run_one, planner_name, planner_cfg, s, runner_cfg, video_dir): i for i, s in enumerate(specs)}
                for fut in as_completed(futures):
                    rows[futures[fut]] = fut.result()
                    progress.advance(task)
    scores: list[ScenarioScore] = [r["score"] for r in rows]
    metrics = aggregate(scores)
    for row, ep in zip(rows, metrics["episodes"]):
        ep.update(maneuver=row["maneuver"], plan_latency_ms_mean=row["plan_latency_ms_mean"], video=row["video"])
    lat = [r["plan_latency_ms_mean"] for r in rows if r["plan_latency_ms_mean"] is not None]
    metrics.update(
        planner=planner_name,
        planner_config=planner_cfg,
        suite=suite,
        num_episodes=len(specs),
        seed=seed,
        plan_latency_ms_mean=float(np.mean(lat)) if lat else None,
        wall_time_s=time.perf_counter() - t0,
        runner=runner_cfg.__dict__,
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False))
    _write_csv(out / "episodes.csv", metrics["episodes"])
    return metrics


def _write_csv(path: Path, episodes: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for ep in episodes:
        keys.extend(k for k in ep if k not in keys)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(episodes)


def run(cfg) -> dict[str, Any]:
    camera_period_s = cfg.camera_period_s
    if camera_period_s is None and cfg.planner == "vam" and cfg.checkpoint:  # the frame spacing it was trained at
        from planner.action_model.checkpoint import vam_frame_period_s

        camera_period_s = vam_frame_period_s(cfg.checkpoint)
    runner_cfg = RunnerConfig(
        dt_s=float(cfg.dt_s),
        planner_period_s=float(cfg.planner_period_s),
        camera_period_s=None if camera_period_s is None else float(camera_period_s),
        n_frames=int(cfg.n_frames),
        image_height=int(cfg.image_height),
        image_width=int(cfg.image_width),
        plan_timeout_s=float(cfg.plan_timeout_s),
    )
    planner_cfg = {"checkpoint": cfg.checkpoint, "num_waypoints": cfg.num_waypoints, "plan_dt_s": cfg.plan_dt_s}
    metrics = evaluate(cfg.planner, cfg.suite, int(cfg.episodes), int(cfg.seed), cfg.out, planner_cfg, runner_cfg, int(cfg.workers), int(cfg.videos))
    ncap = metrics["ncap_score"]
    print(
        f"{cfg.planner} on {cfg.suite} ({metrics['num_episodes']} episodes): score {metrics['score']:.3f}"
        + (f", NCAP {ncap:.2f}/5" if ncap is not None else "")
        + f", collision rate {metrics['collision_rate']:.2f}; wrote {Path(cfg.out) / 'metrics.json'}"
    )
    return metrics
