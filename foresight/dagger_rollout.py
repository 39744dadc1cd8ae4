"""DAgger rollouts: the current planner drives training scenarios (with the expert taking some plans,
`sim_eval.agents.expert_mixing`), and every camera frame it saw becomes a clip frame labelled with
the privileged expert's plan from the state it was in.

One rollout gives one clip in the unified schema (camera frames at the planner's frame rate, the
10 Hz ego pose stream it drove, the route commands it was given) plus its labels
(planner/dagger_labels.py). `record_round` writes a round's rollouts into a clip store, resumably
(item by item, like `foresight data synth`), in `workers` processes (with workers >= 2 each rollout
runs in a worker with one math thread, so the store is the same for any such number; workers=1
runs them in this process). Only training scenario seeds are accepted (sim_eval/seeds.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import zlib
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from contract import EpisodeInfo, PrivilegedState
from data.ego_motion import PoseStream
from data.route_points import route_path
from data.schema import CameraIntrinsics, Clip
from data.store.manifest import Manifest
from data.store.writer import ClipStoreWriter
from planner.dagger_labels import ExpertPlanLabels, write_labels
from sim_eval.agents.expert import ExpertPlanner
from sim_eval.agents.expert_mixing import ExpertMixingPlanner, expert_for
from sim_eval.render.camera import CameraRenderer
from sim_eval.runner import RunnerConfig, episode_id, expert_run, make_camera, route_ahead_in_ego, run_episode
from sim_eval.scenarios.suites import build_scenario
from sim_eval.seeds import check_training_seeds
from sim_eval.simulation import Simulation
from sim_eval.synth import SYNTH_LICENSE, SynthEpisode
from sim_eval.worker_process import exit_with_parent

DAGGER_SOURCE = "dagger"


@dataclass(frozen=True)
class RolloutSettings:
    """What one round's rollouts share (picklable: sent to the worker processes).

    checkpoint: the exported planner that drives (OUT/vam); checkpoint_sha256: its weights' SHA-256
    (provenance); round_index: 1-based; beta: P(the expert drives a plan); runner: the closed-loop
    settings (camera_period_s set: the planner's frame period); precision: the planner's, fp32 | bf16
    (`foresight.training.inference_precision` of the run's training precision)."""

    checkpoint: str
    checkpoint_sha256: str
    round_index: int
    beta: float
    runner: RunnerConfig
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.runner.camera_period_s is None:
            raise ValueError("DAgger rollouts need runner.camera_period_s (the planner's frame period)")

    @property
    def fps(self) -> float:
        return 1.0 / (self.runner.steps_per_frame * self.runner.dt_s)


def weights_sha256(vam_dir: str | Path) -> str:
    """SHA-256 of an exported planner's weights file (its identity in the DAgger provenance)."""
    from planner.action_model.checkpoint import WEIGHTS_NAME

    return hashlib.sha256((Path(vam_dir) / WEIGHTS_NAME).read_bytes()).hexdigest()


def rollout_clip_id(round_index: int, ep: SynthEpisode) -> str:
    return f"dagger-r{round_index:02d}-{ep.suite}-{ep.index:03d}-s{ep.seed}"


def _coin_seed(round_index: int, ep: SynthEpisode) -> int:
    """The mixing coin's seed: the same in every process (str hash is salted per process)."""
    return zlib.crc32(f"dagger/{round_index}/{ep.suite}/{ep.index}/{ep.seed}".encode())


class _VisitedStates:
    """At every camera frame of a rollout: the frame the planner saw, the route command, the
    scenario's route ahead (M, 2) and the expert's plan (K, 3) from the true state then. `on_frame(sim)` (tests) sees each such state."""

    def __init__(self, camera: CameraRenderer, labeller: ExpertPlanner, every_steps: int,
                 on_frame: Callable[[Simulation], None] | None) -> None:
        self.camera, self.labeller, self.every, self.on_frame = camera, labeller, every_steps, on_frame
        self.frames: list[np.ndarray] = []
        self.times_us: list[int] = []
        self.commands: list[int] = []
        self.plans: list[np.ndarray] = []
        self.routes: list[np.ndarray] = []
        self._step = 0

    def __call__(self, sim: Simulation, plan_world: np.ndarray | None) -> None:
        if self._step % self.every == 0:
            self.frames.append(self.camera.render(sim.render_scene()))  # what the runner renders for the planner
            self.times_us.append(int(round(sim.time_s * 1e6)))
            self.commands.append(int(sim.command()))
            self.routes.append(route_path(route_ahead_in_ego(sim)))  # what the planner was told, not where it went
            self.plans.append(self.labeller.plan_poses(PrivilegedState(sim.scenario, sim.world, sim.ego)))
            if self.on_frame is not None:
                self.on_frame(sim)
        self._step += 1


def record_rollout(ep: SynthEpisode, settings: RolloutSettings,
                   on_frame: Callable[[Simulation], None] | None = None) -> tuple[Clip, ExpertPlanLabels]:
    """Roll the planner (mixed with the expert at rate settings.beta) through scenario `ep` and return
    the visited states as a clip and the expert's plans that label them."""
    check_training_seeds([ep.seed], f"DAgger rollout {ep.suite}/{ep.index}")  # never an evaluation scenario
    from planner.vam import VAMPlanner

    learner = VAMPlanner.from_checkpoint(settings.checkpoint, precision=settings.precision)
    controller = ExpertMixingPlanner(learner, settings.beta, _coin_seed(settings.round_index, ep))
    scenario = build_scenario(ep.suite, ep.index, ep.seed)
    labeller = expert_for(learner)
    labeller.reset(EpisodeInfo(episode_id(ep.suite, ep.index, ep.seed), scenario))
    runner = settings.runner
    camera = make_camera(runner, controller)
    visited = _VisitedStates(camera, labeller, runner.steps_per_frame, on_frame)
    progress_m = expert_run(ep.suite, ep.index, ep.seed, runner.dt_s).progress_m
    result = run_episode(scenario, controller, runner, expert_progress_m=progress_m, on_step=visited)
    log = result.log
    origin = log.ego_xyyaw[0]
    xyz = np.c_[log.ego_xyyaw[:, :2] - origin[:2], np.zeros(log.num_steps)]
    poses = PoseStream.from_unsorted(np.round(log.time_s * 1e6).astype(np.int64), xyz, log.ego_xyyaw[:, 2])
    pinhole = camera.camera
    height, width = visited.frames[0].shape[:2]
    times_us = np.array(visited.times_us, dtype=np.int64)
    clip = Clip(
        clip_id=rollout_clip_id(settings.round_index, ep),
        source=DAGGER_SOURCE,
        frames=np.stack(visited.frames),
        frame_timestamps_us=times_us,
        fps=settings.fps,
        intrinsics=CameraIntrinsics.from_matrix(pinhole.intrinsic_matrix, width, height),
        extrinsics=pinhole.extrinsics(),  # like the expert's clips: the warp baseline and conditioning work on them
        poses=poses,
        commands=np.array(visited.commands, dtype=np.int8),
        origin_global=(float(origin[0]), float(origin[1]), 0.0, float(origin[2])),
        license=SYNTH_LICENSE,
        provenance={
            "suite": ep.suite,
            "index": ep.index,
            "seed": ep.seed,
            "maneuver": scenario.goal.maneuver,
            "dagger_round": settings.round_index,
            "source_planner": str(Path(settings.checkpoint).resolve()),
            "source_planner_sha256": settings.checkpoint_sha256,
            "beta": settings.beta,
            "expert_plans": controller.expert_plans,
            "planner_plans": controller.learner_plans,
            "rollout_score": result.score.score,
            "rollout_failure": log.failure_reason,
            "labels": "expert plan from the visited state (planner/dagger_labels.py)",
            "camera": {"mount_height_m": pinhole.mount_height_m, "mount_forward_m": pinhole.mount_forward_m},
        },
    )
    labels = ExpertPlanLabels(np.stack(visited.plans), times_us, labeller.plan_dt_s, np.stack(visited.routes))
    return clip, labels


def _init_worker(parent_pid: int) -> None:
    """Rollout workers share the cores: one math-library thread each; they end with their parent."""
    exit_with_parent(parent_pid)
    import torch

    torch.set_num_threads(1)


class _RolloutPool:
    """Records rollouts in `workers` processes, a few ahead of the one the store writer asks for (in
    order, so the store is the same as with one process); done episodes are never asked for."""

    def __init__(self, eps: list[SynthEpisode], settings: RolloutSettings, workers: int) -> None:
        self.eps, self.settings, self.workers = eps, settings, workers
        self.pool: ProcessPoolExecutor | None = None
        self.futures: dict[int, Future] = {}

    def get(self, k: int, pending: list[int]) -> tuple[Clip, ExpertPlanLabels]:
        if self.workers <= 1:
            return record_rollout(self.eps[k], self.settings)
        if self.pool is None:  # spawn: no forked copies of torch's thread pools
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker, initargs=(os.getpid(),))
        ahead = [j for j in pending if j >= k][: 2 * self.workers]
        for j in ahead:
            if j not in self.futures:
                self.futures[j] = self.pool.submit(record_rollout, self.eps[j], self.settings)
        return self.futures.pop(k).result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def record_round(store_dir: str | Path, eps: list[SynthEpisode], settings: RolloutSettings, workers: int = 1) -> Manifest:
    """Write the rollouts of `eps` into the clip store `store_dir` with their expert labels; a rerun
    after a kill records only the episodes the store does not list yet (deterministically: the same
    planner, scenario and coin seed give the same rollout). Returns the complete store's manifest."""
    check_training_seeds([e.seed for e in eps], "DAgger rollouts")
    config = {"dagger_round": settings.round_index, "source_planner_sha256": settings.checkpoint_sha256, "beta": settings.beta,
              "episodes": [episode_id(e.suite, e.index, e.seed) for e in eps], "runner": dataclasses.asdict(settings.runner)}
    items = [episode_id(e.suite, e.index, e.seed) for e in eps]
    pool = _RolloutPool(eps, settings, workers)
    try:
        with ClipStoreWriter(store_dir, DAGGER_SOURCE, config, codec="png", clips_per_shard=1) as writer:
            pending = [k for k, item in enumerate(items) if not writer.is_done(item)]
            for k in pending:
                clip, labels = pool.get(k, pending)
                write_labels(store_dir, clip.clip_id, labels)  # before the shard: a listed clip always has its labels
                writer.add(items[k], [clip])
        return writer.manifest
    finally:
        pool.close()
