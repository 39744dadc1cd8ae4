"""Plan -> world-frame reference: interpolation to 0.1 s, speed and curvature against closed forms."""

import math

import numpy as np
import pytest

from contract import Plan
from sim_eval.dynamics.reference import ReferenceTrajectory


def _arc(radius_m: float, speed_mps: float, times_s: np.ndarray) -> np.ndarray:
    angle = speed_mps * times_s / radius_m
    return np.stack([radius_m * np.sin(angle), radius_m * (1 - np.cos(angle))], axis=1)


def test_straight_plan_is_anchored_at_the_plan_pose():
    pose = np.array([100.0, -20.0, 2.0])
    times = 0.5 * np.arange(1, 9)
    plan = Plan(waypoints=np.stack([6.0 * times, np.zeros(8)], axis=1), dt_s=0.5)
    reference = ReferenceTrajectory.from_plan(plan, pose, plan_time_s=12.0)
    np.testing.assert_allclose(reference.times_s, 12.0 + 0.1 * np.arange(41), atol=1e-12)
    travelled = 6.0 * (reference.times_s - 12.0)
    expected_xy = pose[:2] + travelled[:, None] * np.array([math.cos(2.0), math.sin(2.0)])
    np.testing.assert_allclose(reference.xy_m, expected_xy, atol=1e-9)
    np.testing.assert_allclose(reference.speed_mps, 6.0, atol=1e-9)
    np.testing.assert_allclose(reference.heading_rad, 2.0, atol=1e-9)
    np.testing.assert_allclose(reference.curvature_per_m, 0.0, atol=1e-9)


def test_arc_plan_gives_curvature_one_over_radius():
    radius, speed = 30.0, 8.0
    times = 0.5 * np.arange(9)
    reference = ReferenceTrajectory.from_world_points(times, _arc(radius, speed, times), 0.0)
    np.testing.assert_allclose(reference.curvature_per_m * radius, 1.0, atol=0.02)
    np.testing.assert_allclose(reference.speed_mps, speed, rtol=0.002)
    # Every interpolated point lies on the circle.
    distance_to_centre = np.hypot(reference.xy_m[:, 0], reference.xy_m[:, 1] - radius)
    np.testing.assert_allclose(distance_to_centre, radius, atol=0.01)
    np.testing.assert_allclose(reference.heading_rad, speed * (reference.times_s) / radius, atol=0.01)


def test_right_turn_has_negative_curvature():
    times = 0.5 * np.arange(9)
    points = _arc(20.0, 5.0, times) * np.array([1.0, -1.0])
    reference = ReferenceTrajectory.from_world_points(times, points, 0.0)
    assert np.all(reference.curvature_per_m < 0)


def test_stopping_plan_slows_to_zero_without_running_back():
    times = 0.5 * np.arange(1, 17)
    # 8 m/s braking at 2 m/s^2 stops after 4 s and 16 m.
    travelled = np.where(times < 4, 8 * times - times**2, 16.0)
    plan = Plan(waypoints=np.stack([travelled, np.zeros_like(travelled)], axis=1), dt_s=0.5)
    reference = ReferenceTrajectory.from_plan(plan, np.zeros(3), plan_time_s=0.0)
    assert np.all(reference.speed_mps >= 0)
    assert reference.speed_mps[0] == pytest.approx(8.0)
    assert np.all(reference.speed_at(np.arange(4.0, 8.0, 0.1)) < 1e-9)
    assert np.all(np.diff(reference.xy_m[:, 0]) >= -1e-12) and reference.xy_m[:, 0].max() <= 16.0 + 1e-9
    np.testing.assert_allclose(reference.heading_rad, 0.0, atol=1e-9)

    # An abrupt stop: a cubic in time would overshoot 10 m and come back.
    abrupt = np.array([5.0, 10.0, 10.0, 10.0, 10.0])
    plan = Plan(waypoints=np.stack([abrupt, np.zeros(5)], axis=1), dt_s=0.5)
    reference = ReferenceTrajectory.from_plan(plan, np.zeros(3), plan_time_s=0.0)
    assert np.all(np.diff(reference.xy_m[:, 0]) >= -1e-12) and reference.xy_m[:, 0].max() <= 10.0 + 1e-9
    np.testing.assert_allclose(reference.heading_rad, 0.0, atol=1e-9)


def test_standing_plan_keeps_the_ego_heading():
    plan = Plan(waypoints=np.zeros((8, 3)), dt_s=0.5)
    reference = ReferenceTrajectory.from_plan(plan, np.array([3.0, 4.0, -1.0]), plan_time_s=2.0)
    np.testing.assert_allclose(reference.xy_m, np.tile([3.0, 4.0], (len(reference.times_s), 1)))
    np.testing.assert_allclose(reference.heading_rad, -1.0)
    np.testing.assert_allclose(reference.speed_mps, 0.0)


def test_centimetre_jitter_at_a_stop_does_not_turn_the_heading():
    rng = np.random.default_rng(0)
    waypoints = np.zeros((8, 2))
    waypoints[:4, 0] = [2.0, 3.5, 4.0, 4.0]
    waypoints[4:] = np.array([4.0, 0.0]) + rng.uniform(-0.02, 0.02, size=(4, 2))
    reference = ReferenceTrajectory.from_plan(Plan(waypoints=waypoints, dt_s=0.5), np.zeros(3), plan_time_s=0.0)
    assert np.abs(reference.heading_rad).max() < 0.02


def test_queries_clamp_outside_the_plan():
    times = 0.5 * np.arange(5)
    reference = ReferenceTrajectory.from_world_points(times, np.stack([4 * times, 0 * times], axis=1), 0.0)
    np.testing.assert_allclose(reference.pose_at(-1.0), [0.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(reference.pose_at(10.0), [8.0, 0.0, 0.0], atol=1e-9)
    assert reference.speed_at(10.0) == pytest.approx(4.0)


def test_bad_plans_are_rejected():
    waypoints = np.ones((4, 2))
    waypoints[2, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        ReferenceTrajectory.from_plan(Plan(waypoints=waypoints, dt_s=0.5), np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="times_s"):
        ReferenceTrajectory.from_world_points(np.array([0.0, 0.0]), np.zeros((2, 2)), 0.0)
