"""One closed-loop world: the ego (bicycle + LQR tracker) among the scenario's traffic, at 10 Hz.

`Simulation` owns the state and records every physics step; the runner decides when the planner is
asked and what it sees. The same object records synthetic training clips (sim_eval/synth.py), so
training data and evaluation share one code path.
"""

from __future__ import annotations

import numpy as np

from contract.footprint import convex_overlap
from data.command import Command, command_from_route
from sim_eval.dynamics.lqr_tracker import LQRTracker
from sim_eval.dynamics.reference import ReferenceTrajectory
from sim_eval.dynamics.vehicle import EgoState, KinematicBicycle
from sim_eval.metrics.episode_log import EpisodeLog, NcapInfo
from sim_eval.render.scene import RenderScene
from sim_eval.scenarios.scenario import Scenario
from sim_eval.world.state import EgoBox, WorldState
from sim_eval.world.to_render import SceneConverter

# EpisodeLog's agent kinds; the world calls static actors "obstacle".
_KIND_TO_LOG = {"vehicle": "vehicle", "pedestrian": "pedestrian", "obstacle": "static"}


class Simulation:
    """The world of one scenario at physics step `dt_s` (default 0.1 s)."""

    def __init__(self, scenario: Scenario, dt_s: float = 0.1) -> None:
        self.scenario = scenario
        self.dt_s = dt_s
        self.vehicle = scenario.ego_vehicle
        self.bicycle = KinematicBicycle(self.vehicle)
        self.tracker = LQRTracker(vehicle=self.vehicle)
        self.traffic = scenario.make_traffic(dt_s=dt_s)
        e = scenario.ego_start
        self.ego = EgoState(e.x_m, e.y_m, e.yaw_rad, e.speed_mps)
        self.world: WorldState = self.traffic.state()
        self.converter = SceneConverter(scenario.road_map, scenario.lights)
        self.agent_ids = self.traffic.agent_ids
        self._agent_col = {a: i for i, a in enumerate(self.agent_ids)}
        self._route_xy = scenario.ego_route.polyline_xy
        self._route_s = scenario.ego_route.path.s_m
        self._records: list[tuple[EgoState, WorldState]] = [(self.ego, self.world)]

    # ---- state ---------------------------------------------------------------------------------
    @property
    def time_s(self) -> float:
        return self.ego.time_s

    def ego_box(self) -> EgoBox:
        e = self.ego
        return EgoBox.from_rear_axle(e.x_m, e.y_m, e.yaw_rad, e.speed_mps, self.vehicle)

    def route_s(self) -> float:
        """Arc length of the ego's rear axle along its route [m]."""
        return float(self.scenario.ego_route.path.project(np.array([self.ego.x_m, self.ego.y_m])).s_m)

    def route_ahead_xy(self) -> np.ndarray:
        """(N, 2) the route polyline from the ego onwards."""
        s = self.route_s()
        return np.concatenate([[[self.ego.x_m, self.ego.y_m]], self._route_xy[self._route_s > s]])

    def command(self) -> Command:
        """The high-level command from the route ahead (the rule every data source uses)."""
        return command_from_route(np.array([self.ego.x_m, self.ego.y_m]), self.ego.yaw_rad, self.ego.speed_mps, self.route_ahead_xy())

    def in_collision(self) -> bool:
        """True if the ego's footprint overlaps any road user now."""
        agents = self.world.agents
        if len(agents) == 0:
            return False
        ego = self.ego_box().corners_xy()
        return bool(np.any(convex_overlap(np.broadcast_to(ego, (len(agents), 4, 2)), agents.corners_xy())))

    def render_scene(self) -> RenderScene:
        return self.converter.convert(self.world, (self.ego.x_m, self.ego.y_m, self.ego.yaw_rad))

    # ---- stepping ------------------------------------------------------------------------------
    def step(self, reference: ReferenceTrajectory) -> None:
        """Advance one physics step tracking `reference`; the traffic sees the ego where it was."""
        ego_box = self.ego_box()
        control = self.tracker.track(self.ego, reference)
        self.ego = self.bicycle.step(self.ego, control.accel_mps2, control.steer_rad, self.dt_s)
        self.world = self.traffic.step(ego_box)
        self._records.append((self.ego, self.world))

    def replay_reference(self, speed_mps: float, horizon_s: float = 3.0) -> ReferenceTrajectory:
        """Constant-speed motion along the route from here (warm-up 'log' steps)."""
        s0 = self.route_s()
        times = self.time_s + np.arange(0.0, horizon_s + 1e-9, 0.5)
        s = s0 + speed_mps * (times - times[0])
        pts = np.stack([self.scenario.ego_route.path.point_at(si) for si in s])
        if speed_mps <= 0:
            pts = pts + np.linspace(0, 1e-3, len(pts))[:, None]  # still strictly progressing in time
        return ReferenceTrajectory.from_world_points(times, pts, self.ego.yaw_rad, self.dt_s)

    # ---- recording -----------------------------------------------------------------------------
    def ego_poses_xyyaw(self) -> np.ndarray:
        """(T, 3) recorded rear-axle poses."""
        return np.array([[e.x_m, e.y_m, e.yaw_rad] for e, _ in self._records])

    def times_s(self) -> np.ndarray:
        return np.array([e.time_s for e, _ in self._records])

    def episode_log(self, episode_id: str, expert_progress_m: float, failure_reason: str | None = None) -> EpisodeLog:
        """Everything recorded so far as the metrics' EpisodeLog."""
        t, m = len(self._records), len(self.agent_ids)
        agent_xyyaw = np.full((t, m, 3), np.nan)
        agent_vel = np.full((t, m, 2), np.nan)
        valid = np.zeros((t, m), bool)
        length, width = np.ones(m), np.ones(m)
        kind = ["vehicle"] * m
        for step, (_, world) in enumerate(self._records):
            a = world.agents
            cols = np.array([self._agent_col[int(i)] for i in a.agent_id], dtype=np.int64)
            if len(cols) == 0:
                continue
            agent_xyyaw[step, cols] = np.stack([a.x_m, a.y_m, a.yaw_rad], axis=1)
            agent_vel[step, cols] = a.velocity_xy
            valid[step, cols] = True
            length[cols], width[cols] = a.length_m, a.width_m
            for c, k in zip(cols, a.kind):
                kind[c] = _KIND_TO_LOG[str(k)]
        ego = np.array([[e.x_m, e.y_m, e.yaw_rad, e.speed_mps] for e, _ in self._records])
        ncap = None
        if self.scenario.ncap is not None:
            ncap = NcapInfo(self.scenario.ncap.kind, f"{self.scenario.suite}/{self.scenario.index}", self.scenario.ncap.v_ref_mps)
        return EpisodeLog.from_states(
            episode_id=episode_id,
            time_s=self.times_s(),
            ego_xyyaw=ego[:, :3],
            ego_speed_mps=ego[:, 3],
            length_m=self.vehicle.length_m,
            width_m=self.vehicle.width_m,
            rear_axle_to_center_m=self.vehicle.rear_axle_to_centre_m,
            agent_xyyaw=agent_xyyaw,
            agent_velocity_xy=agent_vel,
            agent_length_m=length,
            agent_width_m=width,
            agent_kind=kind,
            agent_valid=valid,
            route_xy=self._route_xy,
            expert_progress_m=expert_progress_m,
            ncap=ncap,
            failure_reason=failure_reason,
        )
