"""Pickled nuPlan values that are small on disk but huge once expanded: refused before anything is built."""

from __future__ import annotations

import pickle
import time
import tracemalloc

import numpy as np
import pytest

from data.errors import DataError
from data.restricted_unpickle import UnsafePickleError, restricted_loads
from data.sources.nuplan import NuplanSettings, _float_array, load_log
from tests.data.test_nuplan import write_straight_log


def shared_reference_bomb(levels: int) -> bytes:
    """[[x, x], [x, x]] ... `levels` deep, every level one list referenced twice: 2**levels floats once expanded."""
    node: list = [1.0, 1.0]
    for _ in range(levels - 1):
        node = [node, node]
    return pickle.dumps(node, protocol=4)


def test_shared_reference_bombs_are_refused_naming_the_column():
    blob = shared_reference_bomb(35)  # the 264-byte pickle: 2**35 floats if expanded, 35 levels deep
    assert len(blob) < 300
    t0 = time.monotonic()
    with pytest.raises(UnsafePickleError, match=r"camera\.intrinsic: refusing to unpickle: nested deeper than 32"):
        restricted_loads(blob, "camera.intrinsic")
    with pytest.raises(UnsafePickleError, match=r"camera\.intrinsic: refusing to unpickle: .*more than 10000 elements"):
        restricted_loads(shared_reference_bomb(20), "camera.intrinsic")  # shallow enough: the count stops it
    assert time.monotonic() - t0 < 1.0


def test_nesting_deeper_than_the_limit_is_refused():
    value: list = [1.0]
    for _ in range(40):
        value = [value]
    with pytest.raises(UnsafePickleError, match=r"camera\.distortion.*nested deeper than 32"):
        restricted_loads(pickle.dumps(value), "camera.distortion")
    cycle: list = [1.0]
    cycle.append(cycle)
    with pytest.raises(UnsafePickleError, match="camera.rotation"):  # a cycle is infinitely deep
        restricted_loads(pickle.dumps(cycle), "camera.rotation")


def test_one_list_referenced_many_times_is_counted_each_time_and_the_walk_stops_early():
    row = [0.0] * 100
    blob = pickle.dumps([row] * 100_000, protocol=4)  # 200 KB on disk; 10M elements with multiplicity
    t0 = time.monotonic()
    with pytest.raises(UnsafePickleError, match="more than 10000 elements"):
        restricted_loads(blob, "camera.intrinsic")
    assert time.monotonic() - t0 < 1.0


def test_limits_are_parameters_and_real_values_pass():
    k = [[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]]
    assert restricted_loads(pickle.dumps(k), "K") == k
    assert restricted_loads(pickle.dumps([k, k]), "K") == [k, k]  # shared references within the limit are fine
    with pytest.raises(UnsafePickleError, match="more than 12 elements"):
        restricted_loads(pickle.dumps(k), "K", max_elements=12)
    with pytest.raises(UnsafePickleError, match="nested deeper than 1"):
        restricted_loads(pickle.dumps(k), "K", max_depth=1)


def test_float_conversion_checks_the_declared_shape_before_building_an_array():
    node: list = [1.0, 1.0]
    for _ in range(23):
        node = [node, node]  # 2**24 floats: 128 MB as an array
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"camera\.intrinsic: expected shape \(3, 3\)"):
            _float_array(node, (3, 3), "camera.intrinsic")
        with pytest.raises(DataError, match=r"camera\.distortion: expected shape \(N,\)"):
            _float_array(node, None, "camera.distortion")
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < 1 << 20, peak_bytes
    np.testing.assert_array_equal(_float_array([[1, 2, 3]] * 3, (3, 3), "K"), [[1.0, 2.0, 3.0]] * 3)
    assert _float_array((0.5, -1, 2.0), None, "d").tolist() == [0.5, -1.0, 2.0]
    with pytest.raises(DataError, match="expected shape"):
        _float_array([[1.0, 2.0], [3.0]], (2, 2), "K")
    with pytest.raises(DataError, match="expected numbers"):
        _float_array(["1.0", 2.0], None, "d")
    with pytest.raises(DataError, match="out of float64 range"):
        _float_array([10**400], None, "d")


def test_bomb_in_a_nuplan_log_is_refused_quickly_naming_the_column(tmp_path):
    sensor_root = tmp_path / "sensor_blobs"
    write_straight_log(tmp_path / "bomb.db", sensor_root, intrinsic_blob=shared_reference_bomb(35), n_images=12)
    t0 = time.monotonic()
    with pytest.raises(DataError, match=r"bomb\.db camera\.intrinsic \(CAM_F0\): refusing to unpickle"):
        load_log(tmp_path / "bomb.db", sensor_root, NuplanSettings.default(), lambda path, reason: None)
    assert time.monotonic() - t0 < 5
