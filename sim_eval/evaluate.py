"""Closed-loop evaluation of one planner on a scenario suite, in parallel: metrics.json, episodes.csv, videos.

The planner arrives as a `PlannerSource` (its name and options for the record, and a picklable
function that builds it), so every episode worker builds its own and the simulator never imports a
planner. `foresight eval closed_loop` (foresight/closed_loop.py) makes the source from the registry.

Writes DIR/metrics.json (`ClosedLoopRun.to_dict`: score, ncap_score, collision_rate, submetrics,
episodes, plus the planner, its options, the runner settings and plan latency), DIR/episodes.csv
(one row per run) and DIR/videos/*.mp4 (camera + bird's-eye view) of the first `videos` episodes.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from contract import Planner
from data.convert import progress_bar
from data.store.manifest import atomic_write_text
from sim_eval.metrics.aggregate import SuiteMetrics, aggregate
from sim_eval.render.bev import BevRenderer
from sim_eval.render.camera import CameraRenderer
from sim_eval.render.camera_model import PinholeCamera
from sim_eval.render.video import side_by_side, write_video
from sim_eval.runner import RunnerConfig, episode_id, expert_run, run_episode, run_episodes_batched
from sim_eval.scenarios.suites import build_scenario, suite_names, suite_size
from sim_eval.simulation import Simulation
from sim_eval.worker_process import exit_with_parent


@dataclass(frozen=True)
class PlannerSource:
    """Where the evaluation's planners come from: `make()` builds a fresh planner in any process (it
    must pickle, e.g. a functools.partial of a module-level function); `name` and `options` are
    recorded in metrics.json, so a run can be rebuilt (notebooks/closed_loop_viewer.ipynb)."""

    name: str
    options: dict[str, Any]
    make: Callable[[], Planner]


@dataclass(frozen=True)
class EpisodeSpec:
    suite: str
    index: int
    seed: int
    record_video: bool = False


@dataclass(frozen=True)
class EpisodeRow:
    """One episode's result as a worker returns it (picklable)."""

    score: Any  # sim_eval.metrics.scenario_score.ScenarioScore
    maneuver: str
    plan_latency_ms_mean: float | None
    plan_latency_ms_max: float | None
    video: str | None


@dataclass(frozen=True)
class ClosedLoopRun:
    """A finished `evaluate`: the suite metrics and what produced them."""

    planner: str
    planner_options: dict[str, Any]
    suite: str
    seed: int
    runner: RunnerConfig
    metrics: SuiteMetrics
    plan_latency_ms_mean: float | None
    wall_time_s: float
    batch_size: int

    @property
    def num_episodes(self) -> int:
        return len(self.metrics.episodes)

    def to_dict(self) -> dict[str, Any]:
        """metrics.json: the suite metrics' keys at the top level, then the run's settings."""
        return {
            **self.metrics.to_dict(),
            "planner": self.planner,
            "planner_config": self.planner_options,
            "suite": self.suite,
            "num_episodes": self.num_episodes,
            "seed": self.seed,
            "plan_latency_ms_mean": self.plan_latency_ms_mean,
            "wall_time_s": self.wall_time_s,
            "batch_size": self.batch_size,
            "runner": asdict(self.runner),
        }


def episode_specs(suite: str, episodes: int, seed: int, videos: int) -> list[EpisodeSpec]:
    """`episodes` runs cycling through the suite's scenarios; each new cycle uses the next seed."""
    if suite not in suite_names():
        raise ValueError(f"unknown suite {suite!r}; known: {', '.join(suite_names())}")
    n = suite_size(suite)
    return [EpisodeSpec(suite, k % n, seed + k // n, k < videos) for k in range(episodes)]


class VideoRecorder:
    """Camera view beside a bird's-eye view with the current plan, one frame per physics step. With a
    planner that declares `predicts_frames`, its latest predicted frame goes between the two
    (camera | predicted | bird's-eye view)."""

    def __init__(self, height: int = 144, width: int = 256, planner: Planner | None = None) -> None:
        self.camera = CameraRenderer(PinholeCamera.nuscenes_cam_front(height=height, width=width))
        self.bev = BevRenderer(size_px=height, extent_m=60.0)
        self.frames: list[np.ndarray] = []
        self.size_hw = (height, width)
        self.planner = planner if planner is not None and planner.predicts_frames else None
        if self.planner is not None:
            self.planner.enable_frame_prediction()

    def __call__(self, sim: Simulation, plan_world: np.ndarray | None) -> None:
        scene = sim.render_scene()
        traj = {"plan": plan_world} if plan_world is not None else None
        panels = [self.camera.render(scene)]
        if self.planner is not None:
            predicted = self.planner.predicted_frame
            h, w = self.size_hw
            panels.append(np.zeros((h, w, 3), np.uint8) if predicted is None else cv2.resize(predicted, (w, h), interpolation=cv2.INTER_NEAREST))
        panels.append(self.bev.render(scene, trajectories=traj))
        self.frames.append(side_by_side(*panels, gap_px=2))


def _init_worker(n: int, parent_pid: int) -> None:
    """Episode workers share the cores: n math-library threads each (not one per core each, which
    oversubscribes them: a 2-core machine ran plans ~50x slower that way); they end with their parent."""
    exit_with_parent(parent_pid)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def _episode_row(spec: EpisodeSpec, result: Any, recorder: VideoRecorder | None, video_dir: str | None, dt_s: float) -> EpisodeRow:
    video_path = None
    if recorder is not None and recorder.frames and video_dir:
        name = episode_id(spec.suite, spec.index, spec.seed).replace("/", "_")
        video_path = str(write_video(recorder.frames, Path(video_dir) / f"{name}.mp4", fps=1.0 / dt_s))
    lat = result.plan_latency_ms
    return EpisodeRow(
        score=result.score,
        maneuver=result.scenario.goal.maneuver,
        plan_latency_ms_mean=float(np.mean(lat)) if lat else None,
        plan_latency_ms_max=float(np.max(lat)) if lat else None,
        video=video_path,
    )


def run_one(source: PlannerSource, spec: EpisodeSpec, runner_cfg: RunnerConfig, video_dir: str | None) -> EpisodeRow:
    """Run one episode in this process."""
    return run_batch(source, [spec], runner_cfg, video_dir)[0]


def run_batch(source: PlannerSource, specs: list[EpisodeSpec], runner_cfg: RunnerConfig, video_dir: str | None) -> list[EpisodeRow]:
    """Run episodes in this process: one alone with `run_episode`, several in lockstep with
    `run_episodes_batched` (one planner built, a `replica` of it per further episode)."""
    lead = source.make()
    planners = [lead, *[lead.replica() for _ in specs[1:]]]
    scenarios = [build_scenario(spec.suite, spec.index, spec.seed) for spec in specs]
    progress = [expert_run(spec.suite, spec.index, spec.seed, runner_cfg.dt_s).progress_m for spec in specs]
    recorders = [VideoRecorder(planner=p) if spec.record_video and video_dir else None for spec, p in zip(specs, planners)]
    if len(specs) == 1:
        results = [run_episode(scenarios[0], lead, runner_cfg, expert_progress_m=progress[0], on_step=recorders[0])]
    else:
        results = run_episodes_batched(scenarios, planners, runner_cfg, progress, recorders)
    return [_episode_row(spec, result, recorder, video_dir, runner_cfg.dt_s) for spec, result, recorder in zip(specs, results, recorders)]


def evaluate(
    source: PlannerSource,
    suite: str,
    episodes: int,
    seed: int,
    out: str | Path,
    runner_cfg: RunnerConfig,
    workers: int = 1,
    videos: int = 0,
    batch_size: int = 1,
) -> ClosedLoopRun:
    """Run the suite and write metrics.json / episodes.csv / videos (see the module docstring).

    batch_size 1 runs every episode on its own (in `workers` processes); a larger batch_size runs
    groups of that many episodes in lockstep, each group in one process, its planner asked once
    per planning tick for the whole group (`Planner.plan_batch`)."""
    if batch_size < 1:
        raise ValueError(f"evaluate: batch_size must be >= 1, got {batch_size}")
    # Fail fast on a bad name or checkpoint, before any worker starts; the camera size follows the planner.
    runner_cfg = runner_cfg.for_planner(source.make())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = episode_specs(suite, episodes, seed, videos)
    video_dir = str(out / "videos") if videos else None
    groups = [list(range(i, min(i + batch_size, len(specs)))) for i in range(0, len(specs), batch_size)]
    rows: list[EpisodeRow | None] = [None] * len(specs)
    t0 = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task(f"{source.name} on {suite}", total=len(specs))
        if workers <= 1 or len(groups) == 1:
            for group in groups:
                for i, row in zip(group, run_batch(source, [specs[i] for i in group], runner_cfg, video_dir)):
                    rows[i] = row
                progress.advance(task, len(group))
        else:
            ctx = multiprocessing.get_context("spawn")
            threads = max(1, (os.cpu_count() or 1) // min(workers, len(groups)))
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(threads, os.getpid())) as pool:
                futures = {pool.submit(run_batch, source, [specs[i] for i in group], runner_cfg, video_dir): group for group in groups}
                for fut in as_completed(futures):
                    group = futures[fut]
                    for i, row in zip(group, fut.result()):
                        rows[i] = row
                    progress.advance(task, len(group))
    metrics = aggregate([row.score for row in rows])
    for row, ep in zip(rows, metrics.episodes):
        ep.update(maneuver=row.maneuver, plan_latency_ms_mean=row.plan_latency_ms_mean, video=row.video)
    lat = [r.plan_latency_ms_mean for r in rows if r.plan_latency_ms_mean is not None]
    run = ClosedLoopRun(
        planner=source.name,
        planner_options=dict(source.options),
        suite=suite,
        seed=seed,
        runner=runner_cfg,
        metrics=metrics,
        plan_latency_ms_mean=float(np.mean(lat)) if lat else None,
        wall_time_s=time.perf_counter() - t0,
        batch_size=batch_size,
    )
    atomic_write_text(out / "metrics.json", json.dumps(run.to_dict(), indent=1, allow_nan=False))
    _write_csv(out / "episodes.csv", metrics.episodes)
    return run


def _write_csv(path: Path, episodes: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for ep in episodes:
        keys.extend(k for k in ep if k not in keys)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(episodes)
