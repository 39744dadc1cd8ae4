import numpy as np
import pytest

from data.ego_motion import EGO_STATUS_HALF_WINDOW_S, PoseStream
from data.route_points import ROUTE_PATH_LENGTH_M, ROUTE_PATH_STEP_M, route_path, route_points_ahead


def test_points_at_arc_length_and_straight_on_past_the_end():
    route = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [10.0, 10.0]])  # a repeated point is skipped
    np.testing.assert_allclose(route_points_ahead(route, [0, 5, 10, 15, 25]), [[0, 0], [5, 0], [10, 0], [10, 5], [10, 15]])
    # A single point (or a route of length zero) goes on straight ahead.
    np.testing.assert_allclose(route_points_ahead(np.array([[1.0, 2.0]]), [0, 3]), [[1, 2], [4, 2]])
    np.testing.assert_allclose(route_points_ahead(np.array([[1.0, 2.0], [1.0, 2.0]]), [3]), [[4, 2]])
    with pytest.raises(ValueError, match="finite"):
        route_points_ahead(np.array([[0.0, np.nan]]), [1])
    with pytest.raises(ValueError, match=">= 0"):
        route_points_ahead(route, [-1])


def test_route_path_is_the_route_every_metre():
    radius = 20.0
    phi = np.linspace(0, np.pi / 2, 400)
    arc = np.c_[radius * np.sin(phi), -radius * (1 - np.cos(phi))]  # a right quarter-turn, 31.4 m ...
    arc = np.vstack([arc, [radius, -radius - 1.0]])  # ... then straight on (1 m given, the rest extended)
    path = route_path(arc)
    n = int(round(ROUTE_PATH_LENGTH_M / ROUTE_PATH_STEP_M)) + 1
    assert path.shape == (n, 2)
    on_arc = path[:30]
    np.testing.assert_allclose(np.hypot(on_arc[:, 0], on_arc[:, 1] + radius), radius, atol=2e-3)  # on the circle
    np.testing.assert_allclose(np.linalg.norm(np.diff(path, axis=0), axis=1), ROUTE_PATH_STEP_M, atol=2e-3)
    np.testing.assert_allclose(path[-1], [radius, -radius - (ROUTE_PATH_LENGTH_M - np.pi / 2 * radius)], atol=1e-2)


def test_past_only_ego_status_does_not_see_the_future():
    """Constant 10 m/s until t = 5 s, then 2 m/s^2: at t = 5 s a central difference already reads
    the acceleration to come, the past-only one reads the motion so far (what closed loop has)."""
    t = np.arange(0.0, 10.0, 0.05)
    x = np.where(t < 5, 10 * t, 50 + 10 * (t - 5) + (t - 5) ** 2)
    stream = PoseStream((t * 1e6).astype(np.int64), np.c_[x, 0 * x, 0 * x], 0 * t)
    now = 5_000_000
    assert stream.accel_lon_at(now) > 0.5 and stream.speed_at(now) > 10.1
    assert abs(float(stream.accel_lon_at(now, EGO_STATUS_HALF_WINDOW_S, past_only=True))) < 1e-6
    assert abs(float(stream.speed_at(now, EGO_STATUS_HALF_WINDOW_S, past_only=True)) - 10.0) < 1e-6
    # Once accelerating, the past-only estimate follows within its window.
    later = 7_000_000
    assert abs(float(stream.accel_lon_at(later, EGO_STATUS_HALF_WINDOW_S, past_only=True)) - 2.0) < 1e-6
    assert abs(float(stream.speed_at(later, EGO_STATUS_HALF_WINDOW_S, past_only=True)) - (14.0 - 2 * EGO_STATUS_HALF_WINDOW_S)) < 1e-6
    # At the first pose there is no past: it reads forward rather than dividing by zero.
    assert abs(float(stream.speed_at(0, EGO_STATUS_HALF_WINDOW_S, past_only=True)) - 10.0) < 1e-6
