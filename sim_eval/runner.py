"""The closed-loop runner: physics at 10 Hz, the planner asked every `planner_period_s`.

A planner that raises, times out, or returns NaN / the wrong shape ends its run as a *failed run*
with the reason; the runner itself never crashes because of a planner. NCAP runs stop at the first
collision (NeuroNCAP's rule); other suites run to the end, as nuPlan does.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import numpy as np

from configs import build, defaults
from contract import EpisodeInfo, Observation, Plan, Planner, PrivilegedState, ego_to_world, validate_plan, world_to_ego
from contract.observation import ROUTE_AHEAD_M
from sim_eval.agents.expert import ExpertPlanner
from sim_eval.dynamics.reference import ReferenceTrajectory
from sim_eval.metrics.episode_log import EpisodeLog
from sim_eval.metrics.scenario_score import ScenarioScore, score_episode
from sim_eval.render.camera import CameraRenderer
from sim_eval.render.camera_model import PinholeCamera
from sim_eval.scenarios.scenario import Scenario
from sim_eval.scenarios.suites import build_scenario
from sim_eval.simulation import Simulation

T = TypeVar("T")


@dataclass(frozen=True)
class RunnerConfig:
    """The `runner` section (configs/runner/default.yaml holds the defaults). dt_s: physics step [s];
    planner_period_s: time between plans [s]; camera_period_s: time between camera frames [s] (None:
    one per plan; a world model trained at 5 Hz wants 0.2); n_frames: camera frames in an
    observation (newest last); history_s: ego history length [s]; image_height, image_width: camera
    size [px] (None: the planner's declared `camera_hw`, else fallback_image_height x
    fallback_image_width); plan_timeout_s: a slower plan fails the run [s]."""

    dt_s: float
    planner_period_s: float
    camera_period_s: float | None
    n_frames: int
    history_s: float
    image_height: int | None
    image_width: int | None
    fallback_image_height: int
    fallback_image_width: int
    plan_timeout_s: float

    def __post_init__(self) -> None:
        for name in ("dt_s", "planner_period_s", "history_s", "plan_timeout_s", "camera_period_s"):
            value = getattr(self, name)
            if value is None and name == "camera_period_s":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not value > 0:
                raise ValueError(f"runner.{name} must be a finite number > 0{' or null' if name == 'camera_period_s' else ''}, got {value!r}")
        for name in ("n_frames", "fallback_image_height", "fallback_image_width", "image_height", "image_width"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"runner.{name} must be an integer{' or null' if name.startswith('image') else ''}, got {value!r}")
        if (self.image_height is None) != (self.image_width is None):
            raise ValueError(f"runner: set both image_height and image_width, or neither, got {self.image_height} x {self.image_width}")
        sizes = [self.n_frames, self.fallback_image_height, self.fallback_image_width, self.image_height or 1, self.image_width or 1]
        if min(sizes) < 1:
            raise ValueError(f"runner: n_frames and the image sizes must be >= 1, got {self}")

    @classmethod
    def default(cls, **changes) -> "RunnerConfig":
        """configs/runner/default.yaml, with `changes` (field=value) applied."""
        return build(cls, {**defaults("runner/default"), **changes}, "runner")

    def camera_hw(self, planner: Planner | None = None) -> tuple[int, int]:
        """(height, width) [px] of the camera for `planner`: image_height x image_width when set, else
        the planner's declared camera_hw, else the fallback size."""
        if self.image_height is not None and self.image_width is not None:
            return self.image_height, self.image_width
        if planner is not None and planner.camera_hw is not None:
            return tuple(planner.camera_hw)
        return self.fallback_image_height, self.fallback_image_width

    def for_planner(self, planner: Planner) -> "RunnerConfig":
        """This config with the camera size decided for `planner` (what metrics.json records)."""
        height, width = self.camera_hw(planner)
        return dataclasses.replace(self, image_height=height, image_width=width)

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


def _call_with_timeout(fn: Callable[[], T], timeout_s: float) -> T:
    """fn() if it returns within timeout_s [s], else TimeoutError. The call runs in a daemon thread:
    a planner that never returns is abandoned (its episode fails) and cannot keep the process from
    exiting, as a thread pool's worker would (they are joined at interpreter exit)."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def call() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=call, name="planner-call", daemon=True).start()
    if not done.wait(timeout_s):
        raise TimeoutError(f"no answer within {timeout_s} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


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
        self.extrinsics = None if camera is None else camera.camera.extrinsics()

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
            camera_extrinsics=self.extrinsics,
            route_ahead_xy=route_ahead_in_ego(self.sim),
        )


def route_ahead_in_ego(sim: Simulation) -> np.ndarray:
    """(R, 2) [m] the scenario's route from the ego on, ROUTE_AHEAD_M of it, in the ego frame (what
    `Observation.route_ahead_xy` carries; DAgger labels record the same)."""
    e = sim.ego
    route = sim.route_ahead_xy()
    length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(route, axis=0), axis=1))])
    keep = int(np.searchsorted(length, ROUTE_AHEAD_M, side="left")) + 1  # up to the first point past it
    return world_to_ego(route[:keep], np.array([e.x_m, e.y_m, e.yaw_rad]))


def make_camera(cfg: RunnerConfig, planner: Planner | None = None) -> CameraRenderer:
    """The front camera at `cfg.camera_hw(planner)`."""
    height, width = cfg.camera_hw(planner)
    return CameraRenderer(PinholeCamera.nuscenes_cam_front(height=height, width=width))


@dataclass(frozen=True)
class PlanReply:
    """The answer to an episode's plan request: a plan and the time the episode waited for it [ms],
    or the reason the planner failed (raised, timed out)."""

    plan: Plan | None
    latency_ms: float
    failure: str | None = None


def episode_steps(
    scenario: Scenario,
    planner: Planner,
    cfg: RunnerConfig,
    expert_progress_m: float | None = None,
    on_step: Callable[[Simulation, np.ndarray | None], None] | None = None,
) -> Generator[Observation, PlanReply, EpisodeResult]:
    """One closed-loop episode as a generator: it yields an Observation whenever `planner` must
    plan, takes a PlanReply back (`send`), and returns the EpisodeResult. `run_episode` answers each
    request at once; `run_episodes_batched` answers the requests of many episodes together. The
    planner object is read for its declared capabilities and reset here, never asked to plan."""
    eid = episode_id(scenario.suite, scenario.index, scenario.seed)
    sim = Simulation(scenario, dt_s=cfg.dt_s)
    observer = _Observer(sim, cfg, make_camera(cfg, planner) if planner.uses_camera else None)
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
                reply = yield observer.observation(privileged)
                if reply.failure is not None:
                    failure = reply.failure
                    break
                plan = reply.plan
                latencies.append(reply.latency_ms)
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


def _ask(planner: Planner, observation: Observation, timeout_s: float) -> PlanReply:
    """planner.plan(observation) within timeout_s [s]; an error or a timeout is a failure reply."""
    t0 = time.perf_counter()
    try:
        plan = _call_with_timeout(lambda: planner.plan(observation), timeout_s)
    except TimeoutError:
        return PlanReply(None, 0.0, f"planner timed out (> {timeout_s} s) at t={observation.time_s:.1f} s")
    except Exception as exc:  # noqa: BLE001
        return PlanReply(None, 0.0, f"planner raised {type(exc).__name__}: {exc} at t={observation.time_s:.1f} s")
    return PlanReply(plan, (time.perf_counter() - t0) * 1e3)


def _ask_batch(planners: list[Planner], observations: list[Observation], timeout_s: float) -> list[PlanReply]:
    """One `plan_batch` call for several episodes (each waits the whole call: its latency), within
    timeout_s. Should the call fail, every episode is asked on its own, so that the failure is
    charged to the episodes whose planner fails, not to the batch."""
    t0 = time.perf_counter()
    try:
        plans = _call_with_timeout(lambda: type(planners[0]).plan_batch(planners, observations), timeout_s)
        if len(plans) != len(planners):
            raise ValueError(f"plan_batch returned {len(plans)} plans for {len(planners)} episodes")
    except Exception:  # noqa: BLE001 - attributed below, episode by episode
        return [_ask(p, o, timeout_s) for p, o in zip(planners, observations)]
    latency_ms = (time.perf_counter() - t0) * 1e3
    return [PlanReply(plan, latency_ms) for plan in plans]


def _drive(steps: Generator[Observation, PlanReply, EpisodeResult], reply: PlanReply | None) -> Observation | EpisodeResult:
    """Advance an episode to its next plan request (an Observation) or its end (the EpisodeResult)."""
    try:
        return next(steps) if reply is None else steps.send(reply)
    except StopIteration as stop:
        return stop.value


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
    steps = episode_steps(scenario, planner, cfg, expert_progress_m, on_step)
    state = _drive(steps, None)
    while isinstance(state, Observation):
        state = _drive(steps, _ask(planner, state, cfg.plan_timeout_s))
    return state


def run_episodes_batched(
    scenarios: Sequence[Scenario],
    planners: Sequence[Planner],
    cfg: RunnerConfig,
    expert_progress_m: Sequence[float | None] | None = None,
    on_step: Sequence[Callable[[Simulation, np.ndarray | None], None] | None] | None = None,
) -> list[EpisodeResult]:
    """Run episode i (`scenarios[i]` with `planners[i]`, one planner object per episode) for all i
    in lockstep: at every planning tick the episodes that wait for a plan are answered by one
    `plan_batch` call of the planners' class (batched planners run one model call for all of them),
    and finished episodes leave the batch. Each episode runs exactly as `run_episode` runs it; only
    who answers its plan requests, and when, differs (a planner whose `plan_batch` equals its
    `plan` gives the same results)."""
    n = len(scenarios)
    if len(planners) != n:
        raise ValueError(f"run_episodes_batched: {len(planners)} planners for {n} scenarios")
    if len({type(p) for p in planners}) > 1:
        raise ValueError(f"run_episodes_batched: one planner class per batch, got {sorted({type(p).__name__ for p in planners})}")
    progress = list(expert_progress_m) if expert_progress_m is not None else [None] * n
    callbacks = list(on_step) if on_step is not None else [None] * n
    steps = [episode_steps(s, p, cfg, progress[i], callbacks[i]) for i, (s, p) in enumerate(zip(scenarios, planners))]
    states: list[Observation | EpisodeResult] = [_drive(g, None) for g in steps]
    while True:
        waiting = [i for i, state in enumerate(states) if isinstance(state, Observation)]
        if not waiting:
            break
        replies = _ask_batch([planners[i] for i in waiting], [states[i] for i in waiting], cfg.plan_timeout_s)
        for i, reply in zip(waiting, replies):
            states[i] = _drive(steps[i], reply)
    return states
