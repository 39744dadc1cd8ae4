"""What a planner returns, and how the simulator judges whether it can be executed.

A `Plan` is untrusted planner output. Its constructor checks only that it is a Plan at all (array
type, rank, width); whether its values are usable (finite, K waypoints, plausible magnitudes) is
judged by `validate_plan`, which returns a reason instead of raising so that the runner can record
"returned NaN" apart from "raised" and carry on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.checks import is_real, read_only

# Sanity bounds for validate_plan: no 8 s plan reaches 200 m, and 70 m/s is 252 km/h.
MAX_ABS_WAYPOINT_M = 200.0
MAX_IMPLIED_SPEED_MPS = 70.0


@dataclass(frozen=True)
class Plan:
    """K future rear-axle waypoints in the ego frame at observation time.

    waypoints: (K, 2) [m, m] or (K, 3) [m, m, rad] floating point, x forward, y left, optional yaw;
               waypoint k (0-based) is the pose at time_s + (k + 1) * dt_s.
    dt_s:      [s] spacing of the waypoints.
    extras:    anything to log (predicted frames, samples, timings); never read by the simulator.
    """

    waypoints: np.ndarray
    dt_s: float
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = self.waypoints
        if not isinstance(w, np.ndarray) or not np.issubdtype(w.dtype, np.floating):
            raise TypeError(
                f"Plan.waypoints must be a floating-point numpy array, got {type(w).__name__} "
                f"{getattr(w, 'dtype', '')}"
            )
        if w.ndim != 2 or w.shape[1] not in (2, 3):
            raise ValueError(f"Plan.waypoints must be (K, 2) or (K, 3), got shape {w.shape}")
        if not is_real(self.dt_s):
            raise TypeError(f"Plan.dt_s must be a number, got {self.dt_s!r}")
        if not isinstance(self.extras, dict):
            raise TypeError(f"Plan.extras must be a dict, got {type(self.extras).__name__}")
        object.__setattr__(self, "waypoints", read_only(w.copy()))
        object.__setattr__(self, "dt_s", float(self.dt_s))

    @property
    def num_waypoints(self) -> int:
        return int(self.waypoints.shape[0])

    @property
    def has_yaw(self) -> bool:
        return self.waypoints.shape[1] == 3

    @property
    def times_s(self) -> np.ndarray:
        """(K,) [s] waypoint times relative to the observation."""
        return self.dt_s * np.arange(1, self.num_waypoints + 1)


def validate_plan(
    plan: object,
    expected_k: int,
    expected_dt_s: float | None = None,
    max_abs_m: float = MAX_ABS_WAYPOINT_M,
    max_speed_mps: float = MAX_IMPLIED_SPEED_MPS,
) -> str | None:
    """Why `plan` cannot be executed, or None if it can.

    Checks: it is a Plan; K == expected_k; dt_s finite, > 0 and (if given) == expected_dt_s; all values
    finite; no waypoint farther than max_abs_m from the ego; no step (from the ego, then between
    waypoints) faster than max_speed_mps.
    """
    if not isinstance(plan, Plan):
        return f"planner returned {type(plan).__name__}, not a Plan"
    w = plan.waypoints  # rank, width and dtype were checked when the Plan was built
    if w.shape[0] != expected_k:
        return f"plan has {w.shape[0]} waypoints, expected {expected_k}"
    if not (math.isfinite(plan.dt_s) and plan.dt_s > 0):
        return f"dt_s must be finite and > 0, got {plan.dt_s}"
    if expected_dt_s is not None and abs(plan.dt_s - expected_dt_s) > 1e-6:
        return f"plan dt_s is {plan.dt_s} s, expected {expected_dt_s} s"
    bad_rows = np.flatnonzero(~np.isfinite(w).all(axis=1))
    if len(bad_rows):
        kinds = "NaN" if np.isnan(w).any() else "inf"
        return f"waypoints contain {kinds} at rows {bad_rows.tolist()}"
    distance = np.hypot(w[:, 0], w[:, 1])
    if distance.max() > max_abs_m:
        row = int(distance.argmax())
        return f"waypoint {row} is {distance[row]:.1f} m from the ego (limit {max_abs_m} m)"
    steps = np.diff(np.vstack([np.zeros((1, 2)), w[:, :2]]), axis=0)
    speeds = np.hypot(steps[:, 0], steps[:, 1]) / plan.dt_s
    if speeds.max() > max_speed_mps:
        row = int(speeds.argmax())
        return f"step to waypoint {row} implies {speeds[row]:.1f} m/s (limit {max_speed_mps} m/s)"
    return None
