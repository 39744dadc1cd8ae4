"""Fixed-time traffic lights: cycles, controlled lanes, stop lines and lamp heads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

LightState = Literal["green", "yellow", "red"]


@dataclass(frozen=True)
class LightCycle:
    """green -> yellow -> red, repeating. offset_s: a time at which green starts (any multiple of
    the period away gives the same light)."""

    green_s: float
    yellow_s: float
    red_s: float
    offset_s: float = 0.0

    def __post_init__(self) -> None:
        if min(self.green_s, self.yellow_s, self.red_s) < 0 or self.period_s <= 0:
            raise ValueError(f"LightCycle durations must be >= 0 with a positive period, got {self}")
        if not np.isfinite([self.green_s, self.yellow_s, self.red_s, self.offset_s]).all():
            raise ValueError(f"LightCycle fields must be finite, got {self}")

    @property
    def period_s(self) -> float:
        return self.green_s + self.yellow_s + self.red_s

    def state_at(self, t_s: float) -> LightState:
        phase = (t_s - self.offset_s) % self.period_s
        if phase < self.green_s:
            return "green"
        if phase < self.green_s + self.yellow_s:
            return "yellow"
        return "red"

    def next_change_s(self, t_s: float) -> float:
        """Time of the next state change strictly after t_s."""
        phase = (t_s - self.offset_s) % self.period_s
        for edge in (self.green_s, self.green_s + self.yellow_s, self.period_s):
            if phase < edge - 1e-12:
                return t_s + edge - phase
        return t_s + self.period_s - phase


@dataclass(frozen=True)
class StopLine:
    """Where traffic on `lane_id` stops: arc length s_m along that lane, and the painted line's
    centre xy / direction of travel yaw / length across the lane (metres, radians)."""

    lane_id: int
    s_m: float
    center_xy: tuple[float, float]
    yaw_rad: float
    width_m: float


@dataclass(frozen=True)
class TrafficLight:
    """One signal group: a cycle, the stop lines of the lanes it controls, and where its lamp head
    hangs (head_xyz world metres, facing the controlled traffic)."""

    light_id: int
    cycle: LightCycle
    stop_lines: tuple[StopLine, ...]
    head_xyz: tuple[float, float, float]
    head_facing_yaw_rad: float

    def __post_init__(self) -> None:
        if not self.stop_lines:
            raise ValueError(f"TrafficLight {self.light_id} controls no lanes")
        if not np.isfinite([*self.head_xyz, self.head_facing_yaw_rad]).all():
            raise ValueError(f"TrafficLight {self.light_id} head pose must be finite")

    @property
    def controlled_lanes(self) -> tuple[int, ...]:
        return tuple(sl.lane_id for sl in self.stop_lines)

    def state_at(self, t_s: float) -> LightState:
        return self.cycle.state_at(t_s)


@dataclass(frozen=True)
class TrafficLights:
    """All signal groups of a map (possibly none)."""

    lights: tuple[TrafficLight, ...] = ()

    def __post_init__(self) -> None:
        ids = [lt.light_id for lt in self.lights]
        if len(set(ids)) != len(ids):
            raise ValueError(f"TrafficLights: duplicate light ids {ids}")
        lanes = [lane for lt in self.lights for lane in lt.controlled_lanes]
        if len(set(lanes)) != len(lanes):
            raise ValueError("TrafficLights: a lane is controlled by more than one light")

    def states_at(self, t_s: float) -> dict[int, LightState]:
        """light_id -> state at time t_s."""
        return {lt.light_id: lt.state_at(t_s) for lt in self.lights}

    def light(self, light_id: int) -> TrafficLight:
        for lt in self.lights:
            if lt.light_id == light_id:
                return lt
        raise KeyError(f"no traffic light {light_id}")

    def stop_line_for_lane(self, lane_id: int) -> tuple[int, StopLine] | None:
        """(light_id, stop line) controlling lane_id, or None."""
        for lt in self.lights:
            for sl in lt.stop_lines:
                if sl.lane_id == lane_id:
                    return lt.light_id, sl
        return None
