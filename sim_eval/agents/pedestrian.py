"""Pedestrians that walk a path (e.g. across the road) at a fixed speed once triggered."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim_eval.world.polyline import Polyline


@dataclass(frozen=True, eq=False)
class Pedestrian:
    """Stands at the start of `path` until start_time_s, then walks it at speed_mps and stands at
    its end. Box size in metres."""

    agent_id: int
    path: Polyline
    speed_mps: float = 1.4
    start_time_s: float = 0.0
    length_m: float = 0.6
    width_m: float = 0.6
    height_m: float = 1.75

    def __post_init__(self) -> None:
        if not (np.isfinite(self.speed_mps) and self.speed_mps > 0):
            raise ValueError(f"Pedestrian {self.agent_id}.speed_mps must be > 0, got {self.speed_mps}")
        if not np.isfinite(self.start_time_s):
            raise ValueError(f"Pedestrian {self.agent_id}.start_time_s must be finite")
        if min(self.length_m, self.width_m, self.height_m) <= 0:
            raise ValueError(f"Pedestrian {self.agent_id}: size must be > 0")

    def walked_m(self, t_s: float) -> float:
        return float(np.clip((t_s - self.start_time_s) * self.speed_mps, 0.0, self.path.length_m))

    def state_at(self, t_s: float) -> tuple[float, float, float, float]:
        """(x m, y m, yaw rad, speed m/s) at time t_s."""
        s = self.walked_m(t_s)
        x, y = self.path.point_at(s)
        moving = self.start_time_s <= t_s and s < self.path.length_m
        return float(x), float(y), float(self.path.heading_at(s)), self.speed_mps if moving else 0.0


def pedestrian_states(pedestrians: tuple[Pedestrian, ...] | list[Pedestrian], t_s: float) -> np.ndarray:
    """(P, 4) [x m, y m, yaw rad, speed m/s] of every pedestrian at t_s."""
    if not pedestrians:
        return np.zeros((0, 4))
    return np.array([p.state_at(t_s) for p in pedestrians], dtype=np.float64)
