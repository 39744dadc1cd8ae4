"""Speed of the ego loop: bicycle steps, tracker + bicycle steps and reference builds per second."""

from __future__ import annotations

import math
import time

import numpy as np

from contract import Plan
from sim_eval.dynamics.lqr_tracker import LQRTracker
from sim_eval.dynamics.reference import ReferenceTrajectory
from sim_eval.dynamics.vehicle import EgoState, KinematicBicycle

PHYSICS_DT_S = 0.1
STEPS_PER_PLAN = 5  # planner at 2 Hz, physics at 10 Hz


def _arc_plan(speed_mps: float, radius_m: float, num_waypoints: int = 8, dt_s: float = 0.5) -> Plan:
    """A left arc in the ego frame: what a planner hands the tracker every 0.5 s."""
    angle = speed_mps * dt_s * np.arange(1, num_waypoints + 1) / radius_m
    waypoints = np.stack([radius_m * np.sin(angle), radius_m * (1 - np.cos(angle)), angle], axis=1)
    return Plan(waypoints=waypoints, dt_s=dt_s)


def benchmark_dynamics(n_steps: int = 2000) -> dict[str, float]:
    """Time `n_steps` physics steps of the closed ego loop on one core.

    Returns bicycle_steps_per_s (bicycle alone), loop_steps_per_s (tracker + bicycle, with a new
    reference from an 8-waypoint plan every 5 steps, as at 2 Hz planning), tracker_steps_per_s
    (tracker alone), reference_builds_per_s, and the final speed and distance as a sanity check.
    """
    if n_steps < STEPS_PER_PLAN:
        raise ValueError(f"benchmark_dynamics: n_steps must be >= {STEPS_PER_PLAN}, got {n_steps}")
    bicycle, tracker = KinematicBicycle(), LQRTracker()
    plan = _arc_plan(speed_mps=10.0, radius_m=50.0)

    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=10.0)
    start = time.perf_counter()
    for _ in range(n_steps):
        state = bicycle.step(state, 0.1, 0.05, PHYSICS_DT_S)
    bicycle_s = time.perf_counter() - start

    settled_steering = math.atan(bicycle.vehicle.wheelbase_m / 50.0)
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=10.0, steering_rad=settled_steering)
    reference_s = tracker_s = 0.0
    start = time.perf_counter()
    for step in range(n_steps):
        if step % STEPS_PER_PLAN == 0:
            t0 = time.perf_counter()
            reference = ReferenceTrajectory.from_plan(plan, state.pose_xyyaw, state.time_s)
            reference_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        command = tracker.track(state, reference)
        tracker_s += time.perf_counter() - t0
        state = bicycle.step(state, command.accel_mps2, command.steer_rad, PHYSICS_DT_S)
    loop_s = time.perf_counter() - start
    n_references = math.ceil(n_steps / STEPS_PER_PLAN)
    return {
        "n_steps": float(n_steps),
        "bicycle_steps_per_s": n_steps / bicycle_s,
        "loop_steps_per_s": n_steps / loop_s,
        "tracker_steps_per_s": n_steps / tracker_s,
        "reference_builds_per_s": n_references / reference_s,
        "final_speed_mps": state.speed_mps,
        "final_distance_from_start_m": math.hypot(state.x_m, state.y_m),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(benchmark_dynamics(), indent=2))
