"""Validation of untrusted values at the contract's boundary: numbers, arrays and read-only views.

Messages name the field (`Observation.speed_mps ...`), so a planner author or a server client sees
which input was wrong.
"""

from __future__ import annotations

import math

import numpy as np


def is_real(value: object) -> bool:
    """A plain or numpy int/float (bool is not a number here)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def finite_number(value: object, name: str) -> float:
    """`value` as a float, or ValueError naming `name` when it is not a finite number."""
    if not is_real(value) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def read_only(array: np.ndarray) -> np.ndarray:
    """A view of `array` that refuses writes (the caller keeps its own array writable)."""
    view = array.view()
    view.flags.writeable = False
    return view


def finite_float_array(value: object, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """`value` as a float64 array of `shape` (None: any length) with only finite entries, or ValueError naming `name`."""
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        expected = "(" + ", ".join("N" if want is None else str(want) for want in shape) + ")"
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains non-finite values")
    return array


def strictly_increasing(times: np.ndarray, name: str) -> None:
    """ValueError naming `name` unless `times` (N,) strictly increases."""
    if len(times) > 1 and not (np.diff(times) > 0).all():
        raise ValueError(f"{name} must be strictly increasing, got {times.tolist()}")
