"""WSD learning-rate schedule against hand-computed values."""

from __future__ import annotations

import math

import pytest

from world_model.schedule import WSDSchedule


def test_warmup_stable_linear_decay_values():
    s = WSDSchedule(total_steps=100, warmup_frac=0.1, decay_frac=0.2, final_frac=0.1, decay_shape="linear")
    assert (s.warmup_steps, s.decay_steps, s.decay_start) == (10, 20, 80)
    assert s.factor(0) == pytest.approx(0.1)  # step 0 already trains
    assert s.factor(4) == pytest.approx(0.5)
    assert s.factor(9) == pytest.approx(1.0)
    assert s.factor(10) == s.factor(50) == s.factor(79) == 1.0
    assert s.factor(80) == pytest.approx(1.0 - 0.9 / 20)  # decay starts at once
    assert s.factor(89) == pytest.approx(1.0 - 0.9 * 10 / 20)
    assert s.factor(99) == pytest.approx(0.1)  # final LR reached at the last step
    assert s.factor(100) == s.factor(10_000) == pytest.approx(0.1)
    values = [s.factor(i) for i in range(80, 100)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_cosine_decay_values():
    s = WSDSchedule(total_steps=40, warmup_frac=0.0, decay_frac=0.5, final_frac=0.0, decay_shape="cosine")
    assert s.factor(0) == 1.0 and s.factor(19) == 1.0
    assert s.factor(29) == pytest.approx(0.5 * (1 + math.cos(math.pi * 10 / 20)))  # = 0.5
    assert s.factor(24) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 20)))
    assert s.factor(39) == pytest.approx(0.0, abs=1e-12)


def test_decay_only_fine_tune():
    # Stage 2 of the reference: ~15.5k steps, LR linearly from the peak to 0.1x.
    s = WSDSchedule(total_steps=15_500, warmup_frac=0.0, decay_frac=1.0, final_frac=0.1, decay_shape="linear")
    assert s.factor(0) == pytest.approx(1.0 - 0.9 / 15_500)
    assert s.factor(7_749) == pytest.approx(1.0 - 0.9 * 7_750 / 15_500)
    assert s.factor(15_499) == pytest.approx(0.1)


def test_invalid_schedules_are_rejected():
    with pytest.raises(ValueError, match="exceeds 1"):
        WSDSchedule(total_steps=10, warmup_frac=0.6, decay_frac=0.6, final_frac=0.1, decay_shape="linear")
    with pytest.raises(ValueError, match="total_steps"):
        WSDSchedule(total_steps=0, warmup_frac=0.1, decay_frac=0.1, final_frac=0.1, decay_shape="linear")
    with pytest.raises(ValueError, match="decay_shape"):
        WSDSchedule(total_steps=10, warmup_frac=0.1, decay_frac=0.1, final_frac=0.1, decay_shape="exp")
    with pytest.raises(ValueError, match="step must be >= 0"):
        WSDSchedule(total_steps=10, warmup_frac=0.1, decay_frac=0.1, final_frac=0.1, decay_shape="linear").factor(-1)
