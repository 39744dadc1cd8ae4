"""Scenario suites by name: build_scenario(suite, index, seed) -> Scenario."""

from __future__ import annotations

from collections.abc import Callable

from sim_eval.scenarios.hazard import HAZARD_VARIANTS, build_hazard
from sim_eval.scenarios.ncap import NCAP_SUITE_SIZES, build_ncap
from sim_eval.scenarios.nominal import NOMINAL_VARIANTS, build_nominal, build_smoke
from sim_eval.scenarios.scenario import Scenario

_SUITES: dict[str, tuple[int, Callable[[int, int], Scenario]]] = {
    "smoke": (1, build_smoke),
    "nominal": (len(NOMINAL_VARIANTS), build_nominal),
    "hazard": (len(HAZARD_VARIANTS), build_hazard),
    **{name: (size, (lambda i, s, _n=name: build_ncap(_n, i, s))) for name, size in NCAP_SUITE_SIZES.items()},
}


def suite_names() -> tuple[str, ...]:
    return tuple(_SUITES)


def suite_size(suite: str) -> int:
    """Number of distinct scenario indices in the suite (each can be run with any seed)."""
    if suite not in _SUITES:
        raise ValueError(f"unknown scenario suite {suite!r}; known: {suite_names()}")
    return _SUITES[suite][0]


def build_scenario(suite: str, index: int, seed: int) -> Scenario:
    """The scenario `index` (0 <= index < suite_size(suite)) of `suite`, with per-run randomness from `seed`."""
    size = suite_size(suite)
    if not 0 <= int(index) < size:
        raise ValueError(f"scenario index {index} out of range for suite {suite!r} (size {size})")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return _SUITES[suite][1](int(index), int(seed))
