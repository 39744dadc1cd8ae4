"""Multiplier: no at-fault collisions (nuPlan `no_ego_at_fault_collisions`)."""

from __future__ import annotations

from typing import Iterable

from sim_eval.metrics.collisions import CollisionEvent

# Allowed at-fault collisions per class before the sub-score reaches 0 (nuPlan defaults):
# score per class = max(0, 1 - n / (allowed + 1)); the multiplier is the product over classes.
MAX_AT_FAULT_VRU = 0
MAX_AT_FAULT_VEHICLE = 0
MAX_AT_FAULT_OBJECT = 1
_KIND_CLASS = {"pedestrian": "vru", "bicycle": "vru", "vehicle": "vehicle", "static": "object"}


def no_at_fault_collisions_score(events: Iterable[CollisionEvent]) -> float:
    """1 without at-fault collisions; any vehicle/pedestrian/bicycle -> 0; static objects 1 -> 0.5, 2+ -> 0."""
    counts = {"vru": 0, "vehicle": 0, "object": 0}
    for event in events:
        if event.at_fault:
            counts[_KIND_CLASS[event.agent_kind]] += 1
    allowed = {"vru": MAX_AT_FAULT_VRU, "vehicle": MAX_AT_FAULT_VEHICLE, "object": MAX_AT_FAULT_OBJECT}
    score = 1.0
    for name, count in counts.items():
        score *= max(0.0, 1.0 - count / (allowed[name] + 1))
    return score
