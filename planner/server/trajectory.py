"""Our Plan (K waypoints at dt_s) -> NeuroNCAP's trajectory (6 waypoints at 0.5 s).

Both are rear-axle positions in the ego frame at observation time, x forward, y left [m], waypoint i
at (i + 1) * dt, so only the time grid changes: positions are interpolated linearly in time with the
ego itself, (0, 0) at t = 0, as the first knot. A plan that ends before the last NeuroNCAP time
(3.0 s) is refused rather than extrapolated, so a short-horizon planner fails loudly.
"""

from __future__ import annotations

import numpy as np

from contract import Plan, validate_plan
from planner.server.schema import NEURONCAP_DT_S, NEURONCAP_NUM_WAYPOINTS


class PlanConversionError(ValueError):
    """The plan cannot be executed or does not reach the horizon NeuroNCAP asks for."""


def plan_to_neuroncap(plan: object, expected_k: int, expected_dt_s: float, num_waypoints: int = NEURONCAP_NUM_WAYPOINTS,
                      dt_s: float = NEURONCAP_DT_S) -> np.ndarray:
    """(num_waypoints, 2) [m] positions at dt_s, 2 dt_s, ... from a planner's output, which must have
    the expected_k waypoints every expected_dt_s [s] that its planner declares."""
    if not isinstance(plan, Plan):
        raise PlanConversionError(f"planner returned {type(plan).__name__}, not a Plan")
    reason = validate_plan(plan, expected_k=expected_k, expected_dt_s=expected_dt_s)
    if reason is not None:
        raise PlanConversionError(reason)
    plan_times = np.concatenate([[0.0], plan.times_s])
    target_times = dt_s * np.arange(1, num_waypoints + 1)
    if target_times[-1] > plan_times[-1] + 1e-9:
        raise PlanConversionError(
            f"plan covers {plan_times[-1]:.3g} s ({plan.num_waypoints} x {plan.dt_s} s); "
            f"NeuroNCAP needs {target_times[-1]:.3g} s ({num_waypoints} x {dt_s} s)"
        )
    xy = np.vstack([np.zeros((1, 2)), plan.waypoints[:, :2]])
    return np.stack([np.interp(target_times, plan_times, xy[:, axis]) for axis in (0, 1)], axis=1)
