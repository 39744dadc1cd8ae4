"""Initial description of a non-ego vehicle or obstacle and how it moves.

behavior:
- "idm": follows `route` with the Intelligent Driver Model (reacts to agents, the ego, red lights);
- "scripted": moves along `path` with a fixed speed profile over time, reacting to nothing
  (NCAP actors, stop-and-go leads);
- "static": stands at `pose_xyyaw` (stalled cars, obstacles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim_eval.world.polyline import Polyline
from sim_eval.world.route import Route

Behavior = Literal["idm", "scripted", "static"]


@dataclass(frozen=True, eq=False)
class SpeedProfile:
    """Piecewise-linear speed over time. t_s: (K>=1,) strictly increasing seconds; speed_mps: (K,)
    >= 0. Before t_s[0] and after t_s[-1] the end speeds are held."""

    t_s: np.ndarray
    speed_mps: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.t_s, dtype=np.float64).reshape(-1)
        v = np.asarray(self.speed_mps, dtype=np.float64).reshape(-1)
        if len(t) < 1 or t.shape != v.shape:
            raise ValueError(
                f"SpeedProfile: t_s and speed_mps must be (K>=1,) of equal length, got {t.shape}, {v.shape}"
            )
        if not (np.isfinite(t).all() and np.isfinite(v).all()) or (v < 0).any():
            raise ValueError("SpeedProfile: values must be finite and speeds >= 0")
        if (np.diff(t) <= 0).any():
            raise ValueError("SpeedProfile.t_s must be strictly increasing")
        object.__setattr__(self, "t_s", t)
        object.__setattr__(self, "speed_mps", v)

    @classmethod
    def constant(cls, speed_mps: float) -> "SpeedProfile":
        return cls(np.array([0.0]), np.array([speed_mps]))

    def speed_at(self, t_s: float | np.ndarray) -> np.ndarray:
        return np.interp(t_s, self.t_s, self.speed_mps)

    def accel_at(self, t_s: float | np.ndarray) -> np.ndarray:
        """Slope of the profile at t (0 outside the knots)."""
        if len(self.t_s) < 2:
            return np.zeros_like(np.asarray(t_s, dtype=np.float64))
        slopes = np.diff(self.speed_mps) / np.diff(self.t_s)
        idx = np.searchsorted(self.t_s, t_s, side="right") - 1
        inside = (idx >= 0) & (idx < len(slopes))
        return np.where(inside, slopes[np.clip(idx, 0, len(slopes) - 1)], 0.0)

    def distance_at(self, t_s: float | np.ndarray) -> np.ndarray:
        """Distance travelled from t = 0 to t (m); negative t gives negative distance."""
        t = np.asarray(t_s, dtype=np.float64)
        return self._integral(t) - self._integral(np.zeros_like(t))

    def _integral(self, t: np.ndarray) -> np.ndarray:
        """Integral of speed from t_s[0] to t (extended by the held end speeds)."""
        knots_t, knots_v = self.t_s, self.speed_mps
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (knots_v[1:] + knots_v[:-1]) * np.diff(knots_t))])
        tc = np.clip(t, knots_t[0], knots_t[-1])
        idx = np.clip(np.searchsorted(knots_t, tc, side="right") - 1, 0, len(knots_t) - 1)
        v_at = np.interp(tc, knots_t, knots_v)
        inside = cum[idx] + 0.5 * (knots_v[idx] + v_at) * (tc - knots_t[idx])
        before = np.minimum(t - knots_t[0], 0.0) * knots_v[0]
        after = np.maximum(t - knots_t[-1], 0.0) * knots_v[-1]
        return inside + before + after


@dataclass(frozen=True, eq=False)
class VehicleAgent:
    """One non-ego vehicle/obstacle. start_s_m: arc length of the box centre along route.path
    (idm) or path (scripted) at t = 0. desired_speed_mps: IDM cruise speed (None: the IDM default,
    min(10 m/s, lane limit)). pose_xyyaw: static agents' box centre pose (m, m, rad)."""

    agent_id: int
    behavior: Behavior
    kind: Literal["vehicle", "obstacle"] = "vehicle"
    route: Route | None = None
    path: Polyline | None = None
    start_s_m: float = 0.0
    start_speed_mps: float = 0.0
    profile: SpeedProfile | None = None
    pose_xyyaw: tuple[float, float, float] | None = None
    desired_speed_mps: float | None = None
    length_m: float = 4.6
    width_m: float = 1.9
    height_m: float = 1.6

    def __post_init__(self) -> None:
        where = f"VehicleAgent {self.agent_id}"
        if self.behavior not in ("idm", "scripted", "static"):
            raise ValueError(f"{where}.behavior must be idm/scripted/static, got {self.behavior!r}")
        if self.kind not in ("vehicle", "obstacle"):
            raise ValueError(f"{where}.kind must be vehicle/obstacle, got {self.kind!r}")
        if min(self.length_m, self.width_m, self.height_m) <= 0:
            raise ValueError(f"{where}: size must be > 0")
        if self.start_speed_mps < 0 or not np.isfinite(self.start_speed_mps):
            raise ValueError(f"{where}.start_speed_mps must be finite and >= 0")
        if self.behavior == "idm":
            if self.route is None:
                raise ValueError(f"{where}: idm agents need a route")
            if not 0.0 <= self.start_s_m <= self.route.length_m:
                raise ValueError(f"{where}.start_s_m {self.start_s_m:.1f} outside route [0, {self.route.length_m:.1f}]")
        elif self.behavior == "scripted":
            if self.path is None or self.profile is None:
                raise ValueError(f"{where}: scripted agents need a path and a profile")
        elif self.pose_xyyaw is None or len(self.pose_xyyaw) != 3 or not np.isfinite(self.pose_xyyaw).all():
            raise ValueError(f"{where}: static agents need a finite pose_xyyaw")
        if self.desired_speed_mps is not None and not self.desired_speed_mps > 0:
            raise ValueError(f"{where}.desired_speed_mps must be > 0")

    @property
    def motion_path(self) -> Polyline | None:
        """The polyline this agent moves along (route path for idm, path for scripted)."""
        if self.behavior == "idm":
            return self.route.path
        return self.path if self.behavior == "scripted" else None
