"""Weighted: ego comfort (nuPlan `ego_is_comfortable`), Savitzky-Golay derivatives as nuPlan."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import savgol_filter

from sim_eval.metrics.episode_log import EpisodeLog

MIN_LON_ACCEL_MPS2 = -4.05
MAX_LON_ACCEL_MPS2 = 2.40
MAX_ABS_LAT_ACCEL_MPS2 = 4.89
MAX_ABS_YAW_RATE_RPS = 0.95
MAX_ABS_YAW_ACCEL_RPS2 = 1.93
MAX_ABS_LON_JERK_MPS3 = 4.13
MAX_ABS_JERK_MPS3 = 8.37

# nuPlan's filter settings (its simulation also runs at 0.1 s): accelerations smoothed with a
# window of 8 samples, jerk from a window of 15, yaw rate / yaw acceleration from a window of 5.
ACCEL_WINDOW, ACCEL_POLY = 8, 2
JERK_WINDOW, JERK_POLY = 15, 2
YAW_WINDOW, YAW_RATE_POLY, YAW_ACCEL_POLY = 5, 2, 3
_DECIMALS = 8


def savgol(values: np.ndarray, dt_s: float, window: int, poly_order: int, deriv: int = 0) -> np.ndarray:
    """Savitzky-Golay smoothing / derivative of a uniformly sampled (T,) signal.

    The window is clipped to T and the polynomial order to window - 1 so short logs still work;
    a derivative above the (clipped) order is 0.
    """
    values = np.asarray(values, dtype=np.float64)
    window = min(window, values.shape[0])
    poly_order = min(poly_order, window - 1)
    if deriv > poly_order or window < 1:
        return np.zeros_like(values)
    delta = dt_s if dt_s > 0 else 1.0
    return savgol_filter(values, window_length=window, polyorder=poly_order, deriv=deriv, delta=delta)


@dataclass(frozen=True, eq=False)
class ComfortSignals:
    """Filtered comfort signals, each (T,): lon/lat acceleration at the box centre [m/s^2], yaw rate
    [rad/s], yaw acceleration [rad/s^2], longitudinal jerk and jerk of |acceleration| [m/s^3]."""

    lon_accel_mps2: np.ndarray
    lat_accel_mps2: np.ndarray
    yaw_rate_rps: np.ndarray
    yaw_accel_rps2: np.ndarray
    lon_jerk_mps3: np.ndarray
    jerk_mps3: np.ndarray


def comfort_signals(log: EpisodeLog) -> ComfortSignals:
    """nuPlan's comfort signals from the log.

    Accelerations are moved from the rear axle to the box centre (rigid body: a_lon - w^2 d,
    a_lat + dw/dt d, with d = rear_axle_to_center_m) and smoothed; yaw rate / acceleration are
    derivatives of the unwrapped heading; jerks are derivatives of the smoothed longitudinal
    acceleration and of the smoothed rear-axle acceleration magnitude.
    """
    dt = log.dt_s
    offset = log.rear_axle_to_center_m
    yaw_rate_logged = log.ego_yaw_rate_rps
    yaw_accel_logged = savgol(yaw_rate_logged, dt, YAW_WINDOW, YAW_RATE_POLY, deriv=1)
    lon_center = log.ego_accel_lon_mps2 - yaw_rate_logged**2 * offset
    lat_center = log.ego_accel_lat_mps2 + yaw_accel_logged * offset
    lon = savgol(lon_center, dt, ACCEL_WINDOW, ACCEL_POLY)
    lat = savgol(lat_center, dt, ACCEL_WINDOW, ACCEL_POLY)
    magnitude = savgol(np.hypot(log.ego_accel_lon_mps2, log.ego_accel_lat_mps2), dt, ACCEL_WINDOW, ACCEL_POLY)
    heading = np.unwrap(log.ego_xyyaw[:, 2])
    signals = {
        "lon_accel_mps2": lon,
        "lat_accel_mps2": lat,
        "yaw_rate_rps": savgol(heading, dt, YAW_WINDOW, YAW_RATE_POLY, deriv=1),
        "yaw_accel_rps2": savgol(heading, dt, YAW_WINDOW, YAW_ACCEL_POLY, deriv=2),
        "lon_jerk_mps3": savgol(lon, dt, JERK_WINDOW, JERK_POLY, deriv=1),
        "jerk_mps3": savgol(magnitude, dt, JERK_WINDOW, JERK_POLY, deriv=1),
    }
    return ComfortSignals(**{name: np.round(value, _DECIMALS) for name, value in signals.items()})


def comfort_score(signals: ComfortSignals) -> float:
    """1 iff every comfort signal stays within nuPlan's bounds for the whole run, else 0."""
    within = (
        signals.lon_accel_mps2.min() >= MIN_LON_ACCEL_MPS2
        and signals.lon_accel_mps2.max() <= MAX_LON_ACCEL_MPS2
        and np.abs(signals.lat_accel_mps2).max() <= MAX_ABS_LAT_ACCEL_MPS2
        and np.abs(signals.yaw_rate_rps).max() <= MAX_ABS_YAW_RATE_RPS
        and np.abs(signals.yaw_accel_rps2).max() <= MAX_ABS_YAW_ACCEL_RPS2
        and np.abs(signals.lon_jerk_mps3).max() <= MAX_ABS_LON_JERK_MPS3
        and np.abs(signals.jerk_mps3).max() <= MAX_ABS_JERK_MPS3
    )
    return float(within)
