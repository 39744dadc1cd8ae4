"""The closed-loop runner: physics at 10 Hz, the planner asked every `planner_period_s`.

A planner that raises, times out, or returns NaN / the wrong shape ends its run as a *failed run*
with the reason; the runner itself never crashes because of a planner. NCAP runs stop at the first
collision (NeuroNCAP's rule); other suites run to the end, as nuPlan does.
"""

from __future__ import annotations

import concurrent.futures
import functools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from planner.contract import Observation, Plan, Planner, ego_to_world, validate_plan, world_to_ego
from sim_eval.dynamics.reference import ReferenceTrajectory
from sim_eval.metrics.episode_log import EpisodeLog
from sim_eval.metrics.scenario_score import ScenarioScore, score_episode
from sim_eval.render.camera import CameraRenderer
from sim_eval.render.camera_model import PinholeCamera
from sim_eval.scenarios.scenario import Scenario
from sim_eval.scenarios.suites import build_scenario
from sim_eval.simulation import Simulation


@dataclass(frozen=True)
class RunnerConfig:
    """dt_s: physics step; planner_period_s: time between plans (2 Hz default); camera_period_s:
    time between camera frames (None: one per plan; a world model trained at 5 Hz wants 0.2);
    n_frames: camera frames in an observation (newest last); history_s: ego history length;
    image_*: camera size; plan_timeout_s: a slower plan fails the run."""

    dt_s: float = 0.1
    planner_period_s: float = 0.5
    camera_period_s: float | None = None
    n_frames: int = 4
    history_s: float = 2.0
    image_height: int = 64
    image_width: int = 128
    plan_timeout_s: float = 30.0

    @property
    def steps_per_plan(self) -> int:
        return int(round(self.planner_period_s / self.dt_s))

    @property
    def steps_per_frame(self) -> int:
        return int(round((self.camera_period_s or self.planner_period_s) / self.dt_s))


@dataclass
class EpisodeResult:
    """One run: its log, its score, per-call planner latency and the plans it executed (world xy)."""

    episode_id: str
    scenario: Scenario
    log: EpisodeLog
    score: ScenarioScore
    plan_latency_ms: list[float] = field(default_factory=list)
    plans_world: list[np.ndarray] = field(default_factory=list)


def episode_id(suite: str, index: int, seed: int) -> str:
    return f"{suite}/{index:03d}/seed{seed}"


@functools.lru_cache(maxsize=256)
def expert_run(suite: str, index: int, seed: int, dt_s: float = 0.1) -> tuple[np.ndarray, np.ndarray, float]:
    """The privileged expert's run of a scenario: times (T,), rear-axle poses (T, 3) and its
    progress along the route [m]. The progress metric's reference and the log-replay baseline."""
    from planner.baselines.expert import ExpertPlanner

    scenario = build_scenario(suite, index, seed)
    result = run_episode(scenario, ExpertPlanner(), RunnerConfig(dt_s=dt_s), expert_progress_m=None)
    sim_times, poses = result.log.time_s, result.log.ego_xyyaw
    s = scenario.ego_route.path.project(poses[:, :2]).s_m
    return np.asarray(sim_times), np.asarray(poses), float(s[-1] - s[0])


def _call_with_timeout(fn: Callable[[], Plan], timeout_s: float) -> Plan:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(fn).result(timeout=timeout_s)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class _Observer:
    """Builds observations: a rolling buffer of camera frames and ego poses at the planner rate."""

    def __init__(self, sim: Simulation, cfg: RunnerConfig, camera: CameraRenderer | None) -> None:
        self.sim, self.cfg, self.camera = sim, cfg, camera
        self.frames: deque[np.ndarray] = deque(maxlen=cfg.n_frames)
        self.frame_times: deque[float] = deque(maxlen=cfg.n_frames)
        n_hist = int(round(cfg.history_s / cfg.planner_period_s)) + 1
        self.poses: deque[np.ndarray] = deque(maxlen=n_hist)
        self.pose_times: deque[float] = deque(maxlen=n_hist)
        self.intrinsics = np.eye(3) if camera is None else camera.camera.intrinsic_matrix

    def capture_frame(self) -> None:
        if self.camera is not None:
            self.frames.append(self.camera.render(self.sim.render_scene()))
            self.frame_times.append(self.sim.ego.time_s)

    def capture_pose(self) -> None:
        e = self.sim.ego
        self.poses.append(np.array([e.x_m, e.y_m, e.yaw_rad]))
        self.pose_times.append(e.time_s)

    def observation(self, privileged: dict[str, Any] | None) -> Observation:
        e = self.sim.ego
        here = np.array([e.x_m, e.y_m, e.yaw_rad])
        if self.camera is not None:
            frames, frame_times = np.stack(self.frames), np.array(self.frame_times)
        else:
            frames, frame_times = np.zeros((1, 1, 1, 3), np.uint8), np.array([e.time_s])
        history = world_to_ego(np.stack(self.poses), here)
        history[-1] = 0.0
        return Observation(
            frames_rgb=frames,
            frame_timestamps_s=frame_times,
            ego_history_xyyaw=history,
            ego_history_timestamps_s=np.array(self.pose_times),
            speed_mps=float(e.speed_mps),
            accel_mps2=float(e.accel_mps2),
            yaw_rate_rps=float(e.yaw_rate_rps),
            command=self.sim.command(),
            camera_intrinsics=self.intrinsics,
            time_s=float(e.time_s),
            privileged=privileged,
        )


def make_camera(cfg: RunnerConfig) -> CameraRenderer:
    return CameraRenderer(PinholeCamera.nuscenes_cam_front(height=cfg.image_height, width=cfg.image_width))


def run_episode(
    scenario: Scenario,
    planner: Planner,
    cfg: RunnerConfig = RunnerConfig(),
    expert_progress_m: float | None = None,
    on_step: Callable[[Simulation, np.ndarray | None], None] | None = None,
) -> EpisodeResult:
    """Run `planner` on `scenario` in closed loop and score it.

    expert_progress_m: the expert's progress for the progress metric (None: run the expert first,
    cached per scenario; the expert's own run passes None and scores against itself).
    on_step: optional callback (sim, current plan (K, 2) world xy or None) before every physics step
    (videos, dataset recording).
    """
    eid = episode_id(scenario.suite, scenario.index, scenario.seed)
    sim = Simulation(scenario, dt_s=cfg.dt_s)
    needs_camera = getattr(planner, "uses_camera", True)
    observer = _Observer(sim, cfg, make_camera(cfg) if needs_camera else None)
    episode_info: dict[str, Any] = {"episode_id": eid, "suite": scenario.suite, "dt_s": cfg.dt_s}
    if planner.privileged:
        episode_info["scenario"] = scenario
    failure: str | None = None
    latencies: list[float] = []
    plans_world: list[np.ndarray] = []
    try:
        planner.reset(episode_info)
    except Exception as exc:  # noqa: BLE001 - any planner error is a failed run, never a crash
        failure = f"planner.reset raised {type(exc).__name__}: {exc}"

    n_steps = int(round(scenario.duration_s / cfg.dt_s))
    warmup_steps = scenario.warmup_steps * cfg.steps_per_plan
    stop_on_collision = scenario.ncap is not None
    reference = sim.replay_reference(scenario.ego_start.speed_mps)
    plan_world: np.ndarray | None = None
    expected_k: int | None = None
    for step in range(n_steps):
        if failure is not None:
            break
        if step % cfg.steps_per_frame == 0:
            observer.capture_frame()
        if step % cfg.steps_per_plan == 0:
            observer.capture_pose()
            if step < warmup_steps:
                reference = sim.replay_reference(scenario.ego_start.speed_mps)
            else:
                privileged = {"scenario": scenario, "world": sim.world, "ego": sim.ego} if planner.privileged else None
                obs = observer.observation(privileged)
                t0 = time.perf_counter()
                try:
                    plan = _call_with_timeout(lambda: planner.plan(obs), cfg.plan_timeout_s)
                except concurrent.futures.TimeoutError:
                    failure = f"planner timed out (> {cfg.plan_timeout_s} s) at t={sim.time_s:.1f} s"
                    break
                except Exception as exc:  # noqa: BLE001
                    failure = f"planner raised {type(exc).__name__}: {exc} at t={sim.time_s:.1f} s"
                    break
                latencies.append((time.perf_counter() - t0) * 1e3)
                if expected_k is None:  # the planner's declared K, else the K of its first plan
                    expected_k = getattr(planner, "num_waypoints", None) or (len(plan.waypoints) if isinstance(plan, Plan) else 1)
                reason = validate_plan(plan, expected_k)
                if reason is not None:
                    failure = f"invalid plan at t={sim.time_s:.1f} s: {reason}"
                    break
                pose = np.array([sim.ego.x_m, sim.ego.y_m, sim.ego.yaw_rad])
                reference = ReferenceTrajectory.from_plan(plan, pose, sim.time_s, cfg.dt_s)
                plan_world = ego_to_world(np.asarray(plan.waypoints)[:, :2], pose)
                plans_world.append(plan_world)
        if on_step is not None:
            on_step(sim, plan_world)
        sim.step(reference)
        if stop_on_collision and sim.in_collision():
            break

    if expert_progress_m is None:
        s = scenario.ego_route.path.project(sim.ego_poses_xyyaw()[:, :2]).s_m
        expert_progress_m = float(s[-1] - s[0])
    log = sim.episode_log(eid, expert_progress_m, failure)
    score = score_episode(log, scenario.road_map)
    return EpisodeResult(eid, scenario, log, score, latencies, plans_world)
