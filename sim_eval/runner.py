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
from typing import Callable

import numpy as np

from configs import build, defaults
from contract import EpisodeInfo, Observation, Plan, Planner, PrivilegedState, ego_to_world, validate_plan, world_to_ego
from sim_eval.agents.expert import ExpertPlanner
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
    """The `runner` section (configs/runner/default.yaml holds the defaults). dt_s: physics step [s];
    planner_period_s: time between plans [s]; camera_period_s: time between camera frames [s] (None:
    one per plan; a world model trained at 5 Hz wants 0.2); n_frames: camera frames in an
    observation (newest last); history_s: ego history length [s]; image_height, image_width: camera
    size [px]; plan_timeout_s: a slower plan fails the run [s]."""

    dt_s: float
    planner_period_s: float
    camera_period_s: float | None
    n_frames: int
    history_s: float
    image_height: int
    image_width: int
    plan_timeout_s: float

    def __post_init__(self) -> None:
        for name in ("dt_s", "planner_period_s", "history_s", "plan_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"runner.{name} must be > 0, got {getattr(self, name)}")
        if self.camera_period_s is not None and not self.camera_period_s > 0:
            raise ValueError(f"runner.camera_period_s must be > 0 or null, got {self.camera_period_s}")
        if self.n_frames < 1 or self.image_height < 1 or self.image_width < 1:
            raise ValueError(f"runner: n_frames, image_height and image_width must be >= 1, got {self}")

    @classmethod
    def default(cls, **changes) -> "RunnerConfig":
        """configs/runner/default.yaml, with `changes` (field=value) applied."""
        return build(cls, {**defaults("runner/default"), **changes}, "runner")

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


@dataclass(frozen=True)
class ExpertRun:
    """The privileged expert's run of a scenario: time_s (T,) [s], poses_xyyaw (T, 3) [m, m, rad]
    rear-axle poses in the world frame, progress_m [m] along the route."""

    time_s: np.ndarray
    poses_xyyaw: np.ndarray
    progress_m: float


@functools.lru_cache(maxsize=256)
def expert_run(suite: str, index: int, seed: int, dt_s: float | None = None) -> ExpertRun:
    """The expert (configs/baselines `expert`) on scenario (suite, index, seed) at physics step dt_s [s]
    (None: the runner's default): the progress metric's reference and the log-replay baseline.
    Cached per process."""
    scenario = build_scenario(suite, index, seed)
    runner = RunnerConfig.default() if dt_s is None else RunnerConfig.default(dt_s=dt_s)
    result = run_episode(scenario, ExpertPlanner(), runner, expert_progress_m=None)
    poses = np.asarray(result.log.ego_xyyaw)
    s = scenario.ego_route.path.project(poses[:, :2]).s_m
    return ExpertRun(np.asarray(result.log.time_s), poses, float(s[-1] - s[0]))


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

    def observation(self, privileged: PrivilegedState | None) -> Observation:
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
    cfg: RunnerConfig,
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
    observer = _Observer(sim, cfg, make_camera(cfg) if planner.uses_camera else None)
    failure: str | None = None
    latencies: list[float] = []
    plans_world: list[np.ndarray] = []
    try:
        expected_k, expected_dt_s = int(planner.num_waypoints), float(planner.plan_dt_s)
        planner.reset(EpisodeInfo(eid, scenario if planner.privileged else None))
    except Exception as exc:  # noqa: BLE001 - any planner error is a failed run, never a crash
        failure = f"planner.reset raised {type(exc).__name__}: {exc}"

    n_steps = int(round(scenario.duration_s / cfg.dt_s))
    warmup_steps = scenario.warmup_steps * cfg.steps_per_plan
    stop_on_collision = scenario.ncap is not None
    reference = sim.replay_reference(scenario.ego_start.speed_mps)
    plan_world: np.ndarray | None = None
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
                privileged = PrivilegedState(scenario, sim.world, sim.ego) if planner.privileged else None
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
                reason = validate_plan(plan, expected_k, expected_dt_s)
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
