"""Advances all non-ego road users together: IDM vehicles, scripted and static actors,
pedestrians and traffic lights. Deterministic: no randomness after construction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim_eval.agents.idm import NUPLAN_IDM, IDMParams, find_path_leaders, idm_acceleration_on_route, red_light_gaps, stack_gaps
from sim_eval.agents.pedestrian import Pedestrian
from sim_eval.agents.vehicle import VehicleAgent
from sim_eval.world.state import AgentArrays, EgoBox, WorldState
from sim_eval.world.traffic_light import TrafficLights


class TrafficSim:
    """World-side simulation at a fixed step dt_s (default 0.1 s).

    `step(ego)` advances by one step, treating the ego box (at the current time) as an obstacle for
    IDM agents; `state()` returns the road users at the current time. Vehicles whose path runs out
    leave the world (they are absent from later states)."""

    def __init__(
        self,
        vehicles: Sequence[VehicleAgent],
        pedestrians: Sequence[Pedestrian] = (),
        lights: TrafficLights = TrafficLights(),
        params: IDMParams = NUPLAN_IDM,
        dt_s: float = 0.1,
        start_time_s: float = 0.0,
    ) -> None:
        if not (dt_s > 0 and np.isfinite(dt_s)):
            raise ValueError(f"TrafficSim.dt_s must be > 0, got {dt_s}")
        ids = [v.agent_id for v in vehicles] + [p.agent_id for p in pedestrians]
        if len(set(ids)) != len(ids):
            raise ValueError(f"TrafficSim: duplicate agent ids in {sorted(ids)}")
        self.vehicles = tuple(vehicles)
        self.pedestrians = tuple(pedestrians)
        self.lights = lights
        self.params = params
        self.dt_s = float(dt_s)
        self.time_s = float(start_time_s)
        n = len(self.vehicles)
        self._s = np.array([v.start_s_m for v in self.vehicles], dtype=np.float64)
        self._v = np.array([v.start_speed_mps for v in self.vehicles], dtype=np.float64)
        self._a = np.zeros(n)
        self._active = np.ones(n, dtype=bool)
        self._idm = np.array([v.behavior == "idm" for v in self.vehicles], dtype=bool)
        self._sync_scripted()
        self._update_active()

    # ---- state -------------------------------------------------------------------------------
    def _sync_scripted(self) -> None:
        for i, veh in enumerate(self.vehicles):
            if veh.behavior == "scripted":
                self._s[i] = veh.start_s_m + float(veh.profile.distance_at(self.time_s))
                self._v[i] = float(veh.profile.speed_at(self.time_s))
                self._a[i] = float(veh.profile.accel_at(self.time_s))

    def _update_active(self) -> None:
        for i, veh in enumerate(self.vehicles):
            path = veh.motion_path
            if path is not None and self._s[i] + 0.5 * veh.length_m >= path.length_m:
                self._active[i] = False

    def _vehicle_poses(self) -> np.ndarray:
        """(N, 3) box-centre poses of all vehicles (inactive ones included)."""
        poses = np.zeros((len(self.vehicles), 3))
        for i, veh in enumerate(self.vehicles):
            if veh.behavior == "static":
                poses[i] = veh.pose_xyyaw
            else:
                path = veh.motion_path
                poses[i, :2] = path.point_at(self._s[i])
                poses[i, 2] = path.heading_at(self._s[i])
        return poses

    @property
    def agent_ids(self) -> tuple[int, ...]:
        """Ids of every road user this simulation can ever report (vehicles, then pedestrians);
        a state holds the subset present at its time."""
        return tuple(v.agent_id for v in self.vehicles) + tuple(p.agent_id for p in self.pedestrians)

    def light_states(self) -> dict[int, str]:
        return self.lights.states_at(self.time_s)

    def state(self) -> WorldState:
        """Road users present at the current time (vehicles first, then pedestrians)."""
        poses = self._vehicle_poses()
        act = self._active
        veh = [v for v, a in zip(self.vehicles, act) if a]
        ped = np.array([p.state_at(self.time_s) for p in self.pedestrians]).reshape(-1, 4)
        agents = AgentArrays(
            agent_id=np.array([v.agent_id for v in veh] + [p.agent_id for p in self.pedestrians], dtype=np.int64),
            kind=np.array([v.kind for v in veh] + ["pedestrian"] * len(self.pedestrians), dtype="<U10"),
            x_m=np.concatenate([poses[act, 0], ped[:, 0]]),
            y_m=np.concatenate([poses[act, 1], ped[:, 1]]),
            yaw_rad=np.concatenate([poses[act, 2], ped[:, 2]]),
            speed_mps=np.concatenate([self._v[act], ped[:, 3]]),
            accel_mps2=np.concatenate([self._a[act], np.zeros(len(ped))]),
            length_m=np.array([v.length_m for v in veh] + [p.length_m for p in self.pedestrians], dtype=np.float64),
            width_m=np.array([v.width_m for v in veh] + [p.width_m for p in self.pedestrians], dtype=np.float64),
            height_m=np.array([v.height_m for v in veh] + [p.height_m for p in self.pedestrians], dtype=np.float64),
        )
        return WorldState(time_s=self.time_s, agents=agents, light_states=self.light_states())

    # ---- dynamics ----------------------------------------------------------------------------
    def idm_accelerations(self, ego: EgoBox | None = None) -> np.ndarray:
        """(N,) IDM acceleration of every vehicle at the current time (0 for non-IDM/inactive)."""
        p = self.params
        world = self.state()
        corners = world.agents.corners_xy()  # (K, 4, 2)
        vel = world.agents.velocity_xy  # (K, 2)
        ids = world.agents.agent_id
        if ego is not None:
            corners = np.concatenate([corners, ego.corners_xy()[None]], axis=0)
            ego_vel = ego.speed_mps * np.array([[np.cos(ego.yaw_rad), np.sin(ego.yaw_rad)]])
            vel = np.concatenate([vel, ego_vel], axis=0)
            ids = np.concatenate([ids, [-1]])
        centers = corners.mean(axis=1)
        lights = world.light_states
        acc = np.zeros(len(self.vehicles))
        poses = self._vehicle_poses()
        for i in np.flatnonzero(self._idm & self._active):
            veh = self.vehicles[i]
            v, s = self._v[i], self._s[i]
            s_front = s + 0.5 * veh.length_m
            near = (ids != veh.agent_id) & (np.hypot(*(centers - poses[i, :2]).T) < p.lookahead_m + 10.0)
            leaders = find_path_leaders(veh.route.path, s, veh.length_m, veh.width_m, corners[near], vel[near], p)
            gaps, lead_v = stack_gaps(leaders, red_light_gaps(veh.route, s_front, v, lights, p))
            cap = min(p.max_desired_speed_mps, veh.desired_speed_mps or np.inf)
            acc[i] = idm_acceleration_on_route(veh.route, s_front, v, cap, gaps, lead_v, p)
        return acc

    def step(self, ego: EgoBox | None = None) -> WorldState:
        """Advance by dt_s; returns the new state."""
        dt = self.dt_s
        acc = self.idm_accelerations(ego)
        m = self._idm & self._active
        v, a = self._v[m], acc[m]
        t_stop = np.where(a < 0, v / np.maximum(-a, 1e-9), np.inf)
        dt_eff = np.minimum(dt, t_stop)
        self._s[m] += v * dt_eff + 0.5 * a * dt_eff**2
        new_v = np.maximum(v + a * dt, 0.0)
        self._a[m] = (new_v - v) / dt
        self._v[m] = new_v
        self.time_s += dt
        self._sync_scripted()
        self._update_active()
        return self.state()
