"""A closed-loop scenario: map, ego start and route, other road users, lights, duration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from contract.vehicle import PACIFICA, VehicleParameters
from sim_eval.agents.idm import NUPLAN_IDM, IDMParams
from sim_eval.agents.pedestrian import Pedestrian
from sim_eval.agents.traffic import TrafficSim
from sim_eval.agents.vehicle import VehicleAgent
from sim_eval.world.generator import GeneratedMap
from sim_eval.world.road_map import RoadMap
from sim_eval.world.route import Route
from sim_eval.world.state import EgoBox, WorldState
from sim_eval.world.traffic_light import TrafficLights

Maneuver = Literal[
    "straight", "left", "right", "follow", "stop_and_go", "stop_at_light", "lead_brake", "yield_pedestrian", "cut_in"
]
NcapKind = Literal["stationary", "frontal", "side"]
WARMUP_STEPS = 2  # planner periods every suite replays before the planner takes control


@dataclass(frozen=True)
class EgoStart:
    """Ego state at t = 0: REAR-AXLE position (m), yaw (rad), speed (m/s)."""

    x_m: float
    y_m: float
    yaw_rad: float
    speed_mps: float

    def __post_init__(self) -> None:
        if not np.isfinite([self.x_m, self.y_m, self.yaw_rad, self.speed_mps]).all() or self.speed_mps < 0:
            raise ValueError(f"EgoStart must be finite with speed >= 0, got {self}")

    @property
    def pose_xyyaw(self) -> tuple[float, float, float]:
        return (self.x_m, self.y_m, self.yaw_rad)


@dataclass(frozen=True)
class Goal:
    """High-level goal: the manoeuvre the scenario tests and where the route ends (m)."""

    maneuver: Maneuver
    goal_xy: tuple[float, float]


@dataclass(frozen=True)
class NcapInfo:
    """NeuroNCAP-style metadata. actor_id: the inserted actor. ego_reference_speed_mps: the speed the
    no-reaction ego keeps along its route. v_ref_mps: relative speed at impact of that no-reaction
    run (the denominator of the NCAP score), no_reaction_impact_time_s its time. jitter_*: the
    sampled actor offsets (signed; magnitudes within the type's ranges)."""

    kind: NcapKind
    actor_id: int
    ego_reference_speed_mps: float
    v_ref_mps: float
    no_reaction_impact_time_s: float
    jitter_lon_m: float
    jitter_lat_m: float
    jitter_yaw_rad: float

    def __post_init__(self) -> None:
        if self.kind not in ("stationary", "frontal", "side"):
            raise ValueError(f"NcapInfo.kind invalid: {self.kind!r}")
        if not self.v_ref_mps > 0:
            raise ValueError(f"NcapInfo.v_ref_mps must be > 0 (the no-reaction ego must collide), got {self.v_ref_mps}")


@dataclass(frozen=True, eq=False)
class Scenario:
    """Everything needed to run one closed-loop episode, reproducible from (suite, index, seed).

    warmup_steps: planner periods (0.5 s at 2 Hz) at the start during which the ego replays its
    reference motion (following ego_route at ego_start.speed_mps) before the planner takes control.
    """

    name: str
    suite: str
    index: int
    seed: int
    generated_map: GeneratedMap
    ego_start: EgoStart
    ego_route: Route
    goal: Goal
    vehicles: tuple[VehicleAgent, ...]
    pedestrians: tuple[Pedestrian, ...]
    duration_s: float
    warmup_steps: int = WARMUP_STEPS
    ncap: NcapInfo | None = None
    ego_vehicle: VehicleParameters = PACIFICA

    def __post_init__(self) -> None:
        if not (self.duration_s > 0 and np.isfinite(self.duration_s)):
            raise ValueError(f"Scenario {self.name}: duration_s must be > 0")
        if self.warmup_steps < 0:
            raise ValueError(f"Scenario {self.name}: warmup_steps must be >= 0")
        ids = [v.agent_id for v in self.vehicles] + [p.agent_id for p in self.pedestrians]
        if len(set(ids)) != len(ids) or any(i < 0 for i in ids):
            raise ValueError(f"Scenario {self.name}: agent ids must be unique and >= 0, got {ids}")
        proj = self.ego_route.path.project(np.array([self.ego_start.x_m, self.ego_start.y_m]))
        if abs(float(proj.lateral_m)) > 0.5:
            raise ValueError(f"Scenario {self.name}: ego_start is {float(proj.lateral_m):.2f} m off its route")

    @classmethod
    def on_route(
        cls,
        suite: str,
        index: int,
        seed: int,
        label: str | None,
        generated_map: GeneratedMap,
        ego_route: Route,
        ego_start: EgoStart,
        maneuver: Maneuver,
        vehicles: Sequence[VehicleAgent] = (),
        pedestrians: Sequence[Pedestrian] = (),
        *,
        duration_s: float,
        ncap: NcapInfo | None = None,
    ) -> Scenario:
        """The scenario named `suite/index` (3 digits, then `_label` if given) whose goal is doing
        `maneuver` on the way to the end of ego_route; WARMUP_STEPS of warm-up."""
        name = f"{suite}/{index:03d}" + (f"_{label}" if label else "")
        goal = Goal(maneuver, tuple(float(v) for v in ego_route.polyline_xy[-1]))
        return cls(name, suite, index, seed, generated_map, ego_start, ego_route, goal, tuple(vehicles), tuple(pedestrians), duration_s, ncap=ncap)

    @property
    def road_map(self) -> RoadMap:
        return self.generated_map.road_map

    @property
    def lights(self) -> TrafficLights:
        return self.generated_map.lights

    @property
    def ego_start_s_m(self) -> float:
        """Arc length of the ego's rear axle along ego_route at t = 0."""
        return float(self.ego_route.path.project(np.array([self.ego_start.x_m, self.ego_start.y_m])).s_m)

    def ego_box_at_start(self) -> EgoBox:
        e = self.ego_start
        return EgoBox.from_rear_axle(e.x_m, e.y_m, e.yaw_rad, e.speed_mps, self.ego_vehicle)

    def make_traffic(self, dt_s: float = 0.1, params: IDMParams = NUPLAN_IDM) -> TrafficSim:
        """A fresh simulation of every non-ego road user and light, at t = 0."""
        return TrafficSim(self.vehicles, self.pedestrians, self.lights, params=params, dt_s=dt_s)

    def initial_state(self) -> WorldState:
        return self.make_traffic().state()
