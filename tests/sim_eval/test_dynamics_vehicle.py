"""Kinematic bicycle against closed-form motion: straight line, circle, first-order lags, limits."""

import dataclasses
import math

import numpy as np
import pytest

from contract.vehicle import PACIFICA
from sim_eval.dynamics.vehicle import EgoState, KinematicBicycle


def _fit_circle(xy: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares (Kasa) circle through points (M, 2): centre (2,), radius."""
    a = np.column_stack([2 * xy, np.ones(len(xy))])
    b = (xy**2).sum(axis=1)
    cx, cy, c = np.linalg.lstsq(a, b, rcond=None)[0]
    return np.array([cx, cy]), math.sqrt(c + cx**2 + cy**2)


def test_pacifica_defaults_and_derived_geometry():
    vehicle = PACIFICA
    assert vehicle.wheelbase_m == 3.089 and vehicle.width_m == 2.297 and vehicle.height_m == 1.777
    assert vehicle.length_m == pytest.approx(4.049 + 1.127)
    assert vehicle.rear_axle_to_centre_m == pytest.approx(5.176 / 2 - 1.127)
    assert vehicle.max_steering_rad == pytest.approx(math.pi / 3)
    state = EgoState(x_m=1.0, y_m=2.0, yaw_rad=math.pi / 2, speed_mps=0.0)
    np.testing.assert_allclose(state.centre_xyyaw(vehicle), [1.0, 2.0 + 1.461, math.pi / 2], atol=1e-12)


@pytest.mark.parametrize(
    "field, value",
    [("wheelbase_m", 0.0), ("width_m", -1.0), ("max_steering_rad", 2.0), ("accel_time_constant_s", -0.1)],
)
def test_invalid_vehicle_parameters_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(PACIFICA, **{field: value})


def test_ego_state_rejects_non_finite_values():
    with pytest.raises(ValueError, match="speed_mps"):
        EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=float("nan"))


def test_straight_at_constant_speed_moves_v_times_t():
    bicycle = KinematicBicycle()
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.3, speed_mps=7.0)
    for _ in range(50):
        state = bicycle.step(state, accel_cmd=0.0, steer_cmd=0.0, dt=0.1)
    assert state.time_s == pytest.approx(5.0)
    assert state.speed_mps == 7.0
    np.testing.assert_allclose([state.x_m, state.y_m], 35.0 * np.array([math.cos(0.3), math.sin(0.3)]), atol=1e-9)
    assert state.yaw_rad == pytest.approx(0.3) and state.yaw_rate_rps == 0.0


def test_constant_steering_traces_circle_of_wheelbase_over_tan_delta():
    bicycle = KinematicBicycle()
    delta, speed, dt = 0.2, 5.0, 0.1
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=speed)
    for _ in range(20):  # 2 s: the 0.05 s steering lag has settled to 1e-17
        state = bicycle.step(state, 0.0, delta, dt)
    assert state.steering_rad == pytest.approx(delta, abs=1e-12)
    points = []
    for _ in range(300):
        state = bicycle.step(state, 0.0, delta, dt)
        points.append((state.x_m, state.y_m))
    _, radius = _fit_circle(np.array(points))
    ideal_radius = bicycle.vehicle.wheelbase_m / math.tan(delta)
    # Forward Euler walks a regular polygon: chords v dt turning by omega dt, on a circle of this radius.
    omega = speed * math.tan(delta) / bicycle.vehicle.wheelbase_m
    polygon_radius = (speed * dt / 2) / math.sin(omega * dt / 2)
    assert radius == pytest.approx(polygon_radius, abs=1e-6)
    assert radius == pytest.approx(ideal_radius, abs=0.01)
    assert state.yaw_rate_rps == pytest.approx(omega)


@pytest.mark.parametrize("dt", [0.01, 0.1])
def test_acceleration_lag_is_first_order(dt):
    bicycle = KinematicBicycle()
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=5.0)
    tau = bicycle.vehicle.accel_time_constant_s
    history = []
    for _ in range(round(tau / dt)):
        state = bicycle.step(state, accel_cmd=2.0, steer_cmd=0.0, dt=dt)
        history.append(state.accel_mps2)
    assert state.accel_mps2 == pytest.approx(2.0 * (1 - math.exp(-1)), rel=1e-9)  # 63.2 % after one tau
    assert np.all(np.diff(history) > 0) and max(history) < 2.0


def test_steering_lag_is_first_order():
    bicycle = KinematicBicycle()
    tau = bicycle.vehicle.steering_time_constant_s
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=5.0)
    for _ in range(round(tau / 0.01)):  # one time constant in 0.01 s steps
        state = bicycle.step(state, 0.0, 0.3, 0.01)
    assert state.steering_rad == pytest.approx(0.3 * (1 - math.exp(-1)), rel=1e-9)


def test_steering_lag_is_stable_at_the_physics_step():
    # dt = 0.1 s is twice the 0.05 s time constant: an explicit Euler lag would overshoot and ring.
    bicycle = KinematicBicycle()
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=5.0)
    angles = []
    for _ in range(10):
        state = bicycle.step(state, 0.0, 0.3, 0.1)
        angles.append(state.steering_rad)
    assert angles[0] == pytest.approx(0.3 * (1 - math.exp(-2)))
    assert np.all(np.diff(angles) >= 0) and max(angles) <= 0.3


def test_steering_is_clipped_to_the_limit():
    bicycle = KinematicBicycle()
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=3.0)
    for _ in range(30):
        state = bicycle.step(state, 0.0, -5.0, 0.1)
        assert abs(state.steering_rad) <= bicycle.vehicle.max_steering_rad + 1e-12
    assert state.steering_rad == pytest.approx(-math.pi / 3)


def test_speed_never_negative_by_default_and_realised_accel_is_reported():
    bicycle = KinematicBicycle()
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=1.0)
    xs = []
    for _ in range(40):
        state = bicycle.step(state, accel_cmd=-6.0, steer_cmd=0.0, dt=0.1)
        xs.append(state.x_m)
        assert state.speed_mps >= 0.0
    assert state.speed_mps == 0.0 and state.accel_mps2 == 0.0
    assert np.all(np.diff(xs) >= 0) and xs[-1] == xs[-10]
    # The car stays held after the command changes sign back to 0: no wound-up braking.
    state = bicycle.step(state, 0.0, 0.0, 0.1)
    assert state.speed_mps == 0.0


def test_reversing_when_enabled():
    bicycle = KinematicBicycle(allow_reverse=True)
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=1.0)
    for _ in range(40):
        state = bicycle.step(state, accel_cmd=-2.0, steer_cmd=0.0, dt=0.1)
    assert state.speed_mps < -5.0 and state.x_m < 0.0


def test_step_rejects_bad_inputs():
    bicycle = KinematicBicycle()
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=0.0, speed_mps=1.0)
    with pytest.raises(ValueError, match="dt"):
        bicycle.step(state, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        bicycle.step(state, float("nan"), 0.0, 0.1)


def test_yaw_stays_wrapped():
    bicycle = KinematicBicycle()
    state = EgoState(x_m=0.0, y_m=0.0, yaw_rad=3.1, speed_mps=10.0)
    for _ in range(200):
        state = bicycle.step(state, 0.0, 0.5, 0.1)
        assert -math.pi <= state.yaw_rad < math.pi
