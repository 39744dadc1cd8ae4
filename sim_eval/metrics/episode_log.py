"""`EpisodeLog`: everything the closed-loop metrics need from one simulated run."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from contract.footprint import box_corners

AGENT_KINDS = ("vehicle", "pedestrian", "bicycle", "static")
_UNIFORM_DT_RTOL = 1e-3
_SPEED_VELOCITY_ATOL_MPS = 1e-2
# Array fields: dtype and dims (T steps, M agents, * any, ints fixed).
_ARRAY_FIELDS: dict[str, tuple[type, tuple[str | int, ...]]] = {
    "ego_xyyaw": (np.float64, ("T", 3)),
    "ego_speed_mps": (np.float64, ("T",)),
    "ego_accel_lon_mps2": (np.float64, ("T",)),
    "ego_accel_lat_mps2": (np.float64, ("T",)),
    "ego_yaw_rate_rps": (np.float64, ("T",)),
    "agent_xyyaw": (np.float64, ("T", "M", 3)),
    "agent_speed_mps": (np.float64, ("T", "M")),
    "agent_velocity_xy": (np.float64, ("T", "M", 2)),
    "agent_length_m": (np.float64, ("M",)),
    "agent_width_m": (np.float64, ("M",)),
    "agent_valid": (bool, ("T", "M")),
    "route_xy": (np.float64, ("*", 2)),
}


@dataclass(frozen=True)
class NcapInfo:
    """NeuroNCAP bookkeeping for one run.

    scenario_type: e.g. "stationary", "frontal", "side"; scenario_id: shared by the jittered runs
    of one scenario; v_ref_mps: relative impact speed the no-reaction ego would have had (> 0).
    """

    scenario_type: str
    scenario_id: str
    v_ref_mps: float

    def __post_init__(self) -> None:
        if not self.scenario_type or not self.scenario_id:
            raise ValueError("NcapInfo: scenario_type and scenario_id must be non-empty strings")
        if not (math.isfinite(self.v_ref_mps) and self.v_ref_mps > 0):
            raise ValueError(f"NcapInfo.v_ref_mps must be finite and > 0, got {self.v_ref_mps}")


def _frozen_array(name: str, value: object, dtype: type, shape: tuple[int | None, ...]) -> np.ndarray:
    array = np.array(value, dtype=dtype)  # copy: the log must not alias caller buffers
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape)
    ):
        pretty = tuple("*" if s is None else s for s in shape)
        raise ValueError(f"EpisodeLog.{name}: expected shape {pretty}, got {array.shape}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, kw_only=True, eq=False)  # arrays: compare fields explicitly
class EpisodeLog:
    """One closed-loop run sampled at the physics rate (uniform dt, typically 0.1 s).

    Ego (T = steps):
      time_s (T,) [s] strictly increasing, uniform spacing.
      ego_xyyaw (T, 3) [m, m, rad] rear-axle pose in the world frame.
      ego_speed_mps (T,) [m/s] signed longitudinal speed at the rear axle.
      ego_accel_lon_mps2, ego_accel_lat_mps2 (T,) [m/s^2] rear-axle acceleration, ego frame.
      ego_yaw_rate_rps (T,) [rad/s].
      length_m, width_m [m]; rear_axle_to_center_m [m] from the rear axle forward to the box centre.
    Agents (M = agents, entries where agent_valid is False are ignored and may be NaN):
      agent_xyyaw (T, M, 3) [m, m, rad] box centre; agent_speed_mps (T, M) [m/s];
      agent_velocity_xy (T, M, 2) [m/s] world frame; agent_length_m, agent_width_m (M,) [m];
      agent_kind (M,) str in AGENT_KINDS; agent_valid (T, M) bool.
    Reference:
      route_xy (R, 2) [m] polyline along the expert route, in driving order.
      expert_progress_m [m] progress the expert makes along the route over the same duration.
    ncap: NeuroNCAP info for NCAP suites, else None.
    failure_reason: why the planner failed (the log then ends at the failure), else None.
    """

    episode_id: str
    time_s: np.ndarray
    ego_xyyaw: np.ndarray
    ego_speed_mps: np.ndarray
    ego_accel_lon_mps2: np.ndarray
    ego_accel_lat_mps2: np.ndarray
    ego_yaw_rate_rps: np.ndarray
    length_m: float
    width_m: float
    rear_axle_to_center_m: float
    agent_xyyaw: np.ndarray
    agent_speed_mps: np.ndarray
    agent_velocity_xy: np.ndarray
    agent_length_m: np.ndarray
    agent_width_m: np.ndarray
    agent_kind: np.ndarray
    agent_valid: np.ndarray
    route_xy: np.ndarray
    expert_progress_m: float
    ncap: NcapInfo | None = None
    failure_reason: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.episode_id, str) or not self.episode_id:
            raise ValueError("EpisodeLog.episode_id must be a non-empty string")
        time_s = _frozen_array("time_s", self.time_s, np.float64, (None,))
        steps = time_s.shape[0]
        if steps < 1:
            raise ValueError("EpisodeLog.time_s: need at least one step")
        kinds = np.asarray(self.agent_kind, dtype=object).reshape(-1)
        agent_kind = np.array([str(kind) for kind in kinds], dtype=object)
        sizes = {"T": steps, "M": agent_kind.shape[0], "*": None}
        fields = {"time_s": time_s}
        for name, (dtype, dims) in _ARRAY_FIELDS.items():
            fields[name] = _frozen_array(name, getattr(self, name), dtype, tuple(sizes.get(d, d) for d in dims))
        agent_kind.setflags(write=False)
        fields["agent_kind"] = agent_kind
        for name, value in fields.items():
            object.__setattr__(self, name, value)

        for name in ("time_s", "ego_xyyaw", "ego_speed_mps", "ego_accel_lon_mps2", "ego_accel_lat_mps2",
                     "ego_yaw_rate_rps", "agent_length_m", "agent_width_m", "route_xy"):
            if not np.isfinite(fields[name]).all():
                raise ValueError(f"EpisodeLog.{name}: contains non-finite values")
        for name in ("length_m", "width_m", "rear_axle_to_center_m", "expert_progress_m"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise ValueError(f"EpisodeLog.{name}: expected a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.length_m <= 0 or self.width_m <= 0:
            raise ValueError(f"EpisodeLog: ego dims must be > 0, got length {self.length_m}, width {self.width_m}")
        if steps > 1:
            dt = np.diff(time_s)
            if not (dt > 0).all():
                raise ValueError("EpisodeLog.time_s: must be strictly increasing")
            if np.abs(dt - dt.mean()).max() > _UNIFORM_DT_RTOL * dt.mean():
                raise ValueError("EpisodeLog.time_s: steps must be uniformly spaced (physics rate)")
        if (fields["agent_length_m"] <= 0).any() or (fields["agent_width_m"] <= 0).any():
            raise ValueError("EpisodeLog.agent_length_m/agent_width_m: must be > 0")
        unknown = sorted({str(kind) for kind in agent_kind} - set(AGENT_KINDS))
        if unknown:
            raise ValueError(f"EpisodeLog.agent_kind: unknown kinds {unknown}, expected {AGENT_KINDS}")
        valid = fields["agent_valid"]
        for name in ("agent_xyyaw", "agent_speed_mps", "agent_velocity_xy"):
            values = fields[name]
            finite = np.isfinite(values) if values.ndim == 2 else np.isfinite(values).all(-1)
            if not finite[valid].all():
                raise ValueError(f"EpisodeLog.{name}: non-finite values where agent_valid is True")
        speed_from_velocity = np.linalg.norm(fields["agent_velocity_xy"], axis=-1)
        mismatch = np.abs(np.abs(fields["agent_speed_mps"]) - speed_from_velocity)[valid]
        if mismatch.size and mismatch.max() > _SPEED_VELOCITY_ATOL_MPS:
            raise ValueError(
                f"EpisodeLog.agent_speed_mps: differs from |agent_velocity_xy| by up to {mismatch.max():.3f} m/s"
            )
        if fields["route_xy"].shape[0] < 2:
            raise ValueError("EpisodeLog.route_xy: need at least 2 points")
        if self.ncap is not None and not isinstance(self.ncap, NcapInfo):
            raise TypeError(f"EpisodeLog.ncap: expected NcapInfo or None, got {type(self.ncap).__name__}")
        if self.failure_reason is not None and (not isinstance(self.failure_reason, str) or not self.failure_reason):
            raise ValueError("EpisodeLog.failure_reason: must be None or a non-empty string")

    @classmethod
    def from_states(
        cls,
        *,
        episode_id: str,
        time_s: np.ndarray,
        ego_xyyaw: np.ndarray,
        ego_speed_mps: np.ndarray,
        length_m: float,
        width_m: float,
        rear_axle_to_center_m: float,
        agent_xyyaw: np.ndarray,
        agent_velocity_xy: np.ndarray,
        agent_length_m: np.ndarray,
        agent_width_m: np.ndarray,
        agent_kind: np.ndarray | list[str],
        agent_valid: np.ndarray,
        route_xy: np.ndarray,
        expert_progress_m: float,
        ncap: NcapInfo | None = None,
        failure_reason: str | None = None,
    ) -> EpisodeLog:
        """Build a log from poses and speeds only, deriving the rest by finite differences.

        Longitudinal acceleration = d speed / dt, yaw rate = d unwrap(yaw) / dt (central
        differences), lateral acceleration = speed * yaw rate (kinematic rear axle), agent speed =
        |agent_velocity_xy|.
        """
        time_s = np.asarray(time_s, dtype=np.float64)
        ego_xyyaw = np.asarray(ego_xyyaw, dtype=np.float64)
        ego_speed_mps = np.asarray(ego_speed_mps, dtype=np.float64)
        if time_s.ndim != 1 or ego_xyyaw.shape != (time_s.shape[0], 3) or ego_speed_mps.shape != time_s.shape:
            raise ValueError(
                f"EpisodeLog.from_states: time_s {time_s.shape}, ego_xyyaw {ego_xyyaw.shape}, "
                f"ego_speed_mps {ego_speed_mps.shape} are inconsistent"
            )
        if time_s.shape[0] >= 2:
            accel_lon = np.gradient(ego_speed_mps, time_s)
            yaw_rate = np.gradient(np.unwrap(ego_xyyaw[:, 2]), time_s)
        else:
            accel_lon = np.zeros_like(time_s)
            yaw_rate = np.zeros_like(time_s)
        agent_velocity_xy = np.asarray(agent_velocity_xy, dtype=np.float64)
        return cls(
            episode_id=episode_id,
            time_s=time_s,
            ego_xyyaw=ego_xyyaw,
            ego_speed_mps=ego_speed_mps,
            ego_accel_lon_mps2=accel_lon,
            ego_accel_lat_mps2=ego_speed_mps * yaw_rate,
            ego_yaw_rate_rps=yaw_rate,
            length_m=length_m,
            width_m=width_m,
            rear_axle_to_center_m=rear_axle_to_center_m,
            agent_xyyaw=agent_xyyaw,
            agent_speed_mps=np.linalg.norm(agent_velocity_xy, axis=-1),
            agent_velocity_xy=agent_velocity_xy,
            agent_length_m=agent_length_m,
            agent_width_m=agent_width_m,
            agent_kind=agent_kind,
            agent_valid=agent_valid,
            route_xy=route_xy,
            expert_progress_m=expert_progress_m,
            ncap=ncap,
            failure_reason=failure_reason,
        )

    # Derived views -------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        return int(self.time_s.shape[0])

    @property
    def num_agents(self) -> int:
        return int(self.agent_kind.shape[0])

    @property
    def dt_s(self) -> float:
        """Mean physics step [s] (0.0 for a one-step log)."""
        return float(np.diff(self.time_s).mean()) if self.num_steps > 1 else 0.0

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0])

    @property
    def ego_center_xyyaw(self) -> np.ndarray:
        """(T, 3) [m, m, rad] ego box centre."""
        yaw = self.ego_xyyaw[:, 2]
        offset = self.rear_axle_to_center_m
        return np.stack(
            [self.ego_xyyaw[:, 0] + offset * np.cos(yaw), self.ego_xyyaw[:, 1] + offset * np.sin(yaw), yaw], axis=-1
        )

    @property
    def ego_corners_xy(self) -> np.ndarray:
        """(T, 4, 2) [m] ego footprint corners (FL, RL, RR, FR)."""
        return box_corners(self.ego_center_xyyaw, self.length_m, self.width_m)

    @property
    def ego_velocity_xy(self) -> np.ndarray:
        """(T, 2) [m/s] world-frame velocity of the rear axle (along the heading)."""
        yaw = self.ego_xyyaw[:, 2]
        return self.ego_speed_mps[:, None] * np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)

    @property
    def agent_corners_xy(self) -> np.ndarray:
        """(T, M, 4, 2) [m] agent footprint corners (FL, RL, RR, FR); NaN-free only where valid."""
        return box_corners(self.agent_xyyaw, self.agent_length_m[None, :], self.agent_width_m[None, :])
