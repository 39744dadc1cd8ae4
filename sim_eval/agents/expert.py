"""The privileged expert: drives the scenario's route with full knowledge of the map and road users.

It follows the route at the speed limit (slowing before tighter limits), keeps IDM gaps to anything
on its path (vehicles, pedestrians, the stop line of a red light, static obstacles) and, when its
lane is blocked by an oncoming or stopped object, swerves into a free adjacent lane of the same
direction. It records the synthetic dataset and is the reference the progress metric compares with.
Privileged: the runner hands it the scenario at reset and `observation.privileged` (a
`contract.PrivilegedState`) at every plan. Its settings are `baselines.expert` (configs/baselines/).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from configs import build, defaults
from contract import EpisodeInfo, Observation, Plan, Planner, PrivilegedState, world_to_ego
from data.settings import check_real
from sim_eval.agents.idm import IDMParams, find_path_leaders, idm_acceleration_on_route, red_light_gaps, stack_gaps
from sim_eval.world.polyline import Polyline

# A leader coming towards us faster than this blocks the lane: swerve if a neighbour lane is free.
# (Stopped cars and obstacles are braked for, as in traffic; swerving around them is not "nominal".)
_ONCOMING_SPEED_MPS = -0.5
_SWERVE_TRIGGER_GAP_M = 40.0


@dataclass(frozen=True)
class ExpertConfig:
    """`baselines.expert`: num_waypoints every plan_dt_s [s]; substep_s: speed-rollout step [s];
    lane_change_tau_s: time constant of a lateral move to the neighbour lane or back to the lane
    centre [s] at the current speed; lane_change_min_length_m: the move's length constant is
    lane_change_tau_s x speed but at least this [m] (the move is laid out over the distance the plan
    travels, not over time: a stopped car cannot slide sideways); swerve: change lanes around an
    oncoming blocker; max_lateral_accel_mps2: slow below the limit on tight curves
    (tracking accuracy); idm: its gap keeping."""

    num_waypoints: int
    plan_dt_s: float
    substep_s: float
    lane_change_tau_s: float
    lane_change_min_length_m: float
    swerve: bool
    max_lateral_accel_mps2: float
    idm: IDMParams

    def __post_init__(self) -> None:
        for name in ("plan_dt_s", "substep_s", "lane_change_tau_s", "lane_change_min_length_m", "max_lateral_accel_mps2"):
            check_real(f"baselines.expert.{name}", getattr(self, name), 0.0, low_open=True)

    @classmethod
    def default(cls) -> "ExpertConfig":
        """The settings in configs/baselines/default.yaml (the expert every evaluation compares with)."""
        return build(cls, defaults("baselines/default")["expert"], "baselines.expert")


@dataclass(frozen=True)
class _SpeedRoute:
    """The route seen by the speed planner: its path with curve-aware limits."""

    path: Polyline
    speed_limits_mps: np.ndarray


class ExpertPlanner(Planner):
    """Rule-based privileged driver; waypoints (K, 2) in the ego frame."""

    name = "expert"
    privileged = True
    uses_camera = False

    def __init__(self, config: ExpertConfig | None = None) -> None:
        self.config = config if config is not None else ExpertConfig.default()
        self._scenario = None

    @property
    def num_waypoints(self) -> int:
        return self.config.num_waypoints

    @property
    def plan_dt_s(self) -> float:
        return self.config.plan_dt_s

    def reset(self, episode: EpisodeInfo) -> None:
        if episode.scenario is None:
            raise RuntimeError("the expert is privileged: reset needs EpisodeInfo.scenario")
        self._scenario = scenario = episode.scenario
        route = scenario.ego_route
        kappa = np.abs(route.path.curvature_at(route.path.s_m))
        comfortable = np.sqrt(self.config.max_lateral_accel_mps2 / np.maximum(kappa, 1e-6))
        # Same route, with limits lowered where the curve is tight.
        self._speed_route = _SpeedRoute(route.path, np.minimum(route.speed_limits_mps, comfortable))

    def plan(self, observation: Observation) -> Plan:
        if observation.privileged is None or self._scenario is None:
            raise RuntimeError("the expert is privileged: it needs the scenario and observation.privileged")
        return Plan(waypoints=self.plan_poses(observation.privileged)[:, :2], dt_s=self.config.plan_dt_s)

    def plan_poses(self, state: PrivilegedState) -> np.ndarray:
        """(K, 3) [m, m, rad] the plan from the true state `state` (after `reset` with its scenario):
        waypoints every plan_dt_s with the route's heading there, in the ego's rear-axle frame. The
        expert keeps no state between plans, so this is its plan from any state."""
        if self._scenario is None:
            raise RuntimeError("the expert is privileged: reset it with the scenario first")
        ego, world = state.ego, state.world
        scenario, cfg = self._scenario, self.config
        veh, route = scenario.ego_vehicle, scenario.ego_route
        path = route.path
        proj = path.project(np.array([ego.x_m, ego.y_m]))
        s_rear, lateral_now = float(proj.s_m), float(proj.lateral_m)
        corners, velocity = world.agents.corners_xy(), world.agents.velocity_xy

        target_lateral = self._choose_lateral(scenario, route, s_rear, lateral_now, ego.speed_mps, corners, velocity)
        swerving = abs(target_lateral - lateral_now) > 0.3
        lane_path = self._shifted_path(path, target_lateral)
        s_center = s_rear + veh.rear_axle_to_centre_m
        s_front = s_rear + veh.rear_axle_to_front_m
        leaders = find_path_leaders(lane_path, s_center, veh.length_m, veh.width_m, corners, velocity, cfg.idm)
        gaps, lead_v = stack_gaps(leaders, red_light_gaps(route, s_front, ego.speed_mps, world.light_states, cfg.idm))
        s_path = self._rollout(s_front, ego.speed_mps, gaps, lead_v, hold_speed=swerving)

        times = cfg.plan_dt_s * np.arange(1, cfg.num_waypoints + 1)
        ds = s_path[np.round(times / cfg.substep_s).astype(int)]
        s_future = s_rear + ds
        # Exponential approach over the distance travelled (at a steady speed v the same as over time with
        # tau: length tau v): memoryless, so replanning every 0.5 s continues the same manoeuvre, and a plan
        # that stands still keeps its lateral place (over time, a stopped ego's plan slid sideways: a label
        # no car can follow, which DAgger taught the planner).
        length_m = max(cfg.lane_change_tau_s * ego.speed_mps, cfg.lane_change_min_length_m)
        lateral = target_lateral + (lateral_now - target_lateral) * np.exp(-ds / length_m)
        pts = np.stack([path.point_at(s) for s in s_future])
        heading = np.array([path.heading_at(s) for s in s_future])
        world_xy = pts + lateral[:, None] * np.stack([-np.sin(heading), np.cos(heading)], axis=1)
        return world_to_ego(np.c_[world_xy, heading], np.array([ego.x_m, ego.y_m, ego.yaw_rad]))

    def _rollout(self, s_front: float, v: float, gaps: np.ndarray, lead_v: np.ndarray, hold_speed: bool) -> np.ndarray:
        """Distance travelled at each substep over the horizon (IDM with constant-speed leaders).

        hold_speed: during an evasive move, do not speed up (but still brake if needed)."""
        cfg, p, route = self.config, self.config.idm, self._speed_route
        n = int(round(cfg.num_waypoints * cfg.plan_dt_s / cfg.substep_s))
        dt = cfg.substep_s
        travelled = np.zeros(n + 1)
        gaps = gaps.copy()
        cap = float(route.speed_limits_mps.max())
        for i in range(n):
            # Holding speed: the current speed (at least 0.1 m/s) caps the desired speed.
            cap_now = min(cap, max(v, 0.1)) if hold_speed else cap
            a = idm_acceleration_on_route(route, s_front + travelled[i], v, cap_now, gaps, lead_v, p)
            v_new = max(v + a * dt, 0.0)
            step = 0.5 * (v + v_new) * dt
            travelled[i + 1] = travelled[i] + step
            gaps -= step - lead_v * dt
            v = v_new
        return travelled

    def _choose_lateral(self, scenario, route, s_rear, lateral_now, speed, corners, velocity) -> float:
        """0 (own lane) unless an oncoming object blocks it and a same-direction neighbour lane is free."""
        if not self.config.swerve or len(corners) == 0:
            return 0.0
        veh, p = scenario.ego_vehicle, self.config.idm
        lane = scenario.road_map.lanes[route.lane_at_s(s_rear)]
        options = [0.0]
        if lane.left_neighbor is not None:
            options.append(+lane.width_m)
        if lane.right_neighbor is not None:
            options.append(-lane.width_m)
        s_center = s_rear + veh.rear_axle_to_centre_m

        def blocked(offset: float) -> bool:
            leaders = find_path_leaders(self._shifted_path(route.path, offset), s_center, veh.length_m, veh.width_m, corners, velocity, p)
            close = leaders.gap_m < max(_SWERVE_TRIGGER_GAP_M, 3.0 * speed)
            return bool(np.any(close & (leaders.leader_speed_mps < _ONCOMING_SPEED_MPS)))

        current = min(options, key=lambda o: abs(o - lateral_now))
        if not blocked(current):
            # Stay where we are; drift back to our own lane once it is free again.
            return 0.0 if current != 0.0 and not blocked(0.0) else current
        free = [o for o in options if o != current and not blocked(o)]
        if not free:
            return current  # nowhere to go: brake in lane (IDM does)
        # Prefer the side away from the nearest blocking object.
        obstacle_lateral = float(route.path.project(self._nearest_ahead(corners, s_rear, route)).lateral_m)
        return max(free, key=lambda o: abs(o - obstacle_lateral))

    @staticmethod
    def _nearest_ahead(corners: np.ndarray, s_rear: float, route) -> np.ndarray:
        centers = corners.mean(axis=1)
        s = route.path.project(centers).s_m
        ahead = np.where(s > s_rear, s, np.inf)
        return centers[int(np.argmin(ahead))]

    @staticmethod
    def _shifted_path(path: Polyline, lateral_m: float) -> Polyline:
        return path if lateral_m == 0.0 else Polyline(path.offset(lateral_m))
