"""Scenario suites reproducible from (suite, index, seed)."""

from sim_eval.scenarios.scenario import EgoStart, Goal, NcapInfo, Scenario
from sim_eval.scenarios.suites import build_scenario, suite_names, suite_size

__all__ = ["EgoStart", "Goal", "NcapInfo", "Scenario", "build_scenario", "suite_names", "suite_size"]
