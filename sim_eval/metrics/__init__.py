"""Closed-loop metrics: nuPlan closed-loop score, NeuroNCAP safety score, suite aggregation."""

from sim_eval.metrics.aggregate import aggregate
from sim_eval.metrics.collisions import CollisionEvent, CollisionType, find_collisions, first_contact_steps
from sim_eval.metrics.episode_log import AGENT_KINDS, EpisodeLog, NcapInfo
from sim_eval.metrics.map_query import MapQuery
from sim_eval.metrics.ncap import HierarchicalMean, NcapRunResult, hierarchical_mean, ncap_run_score
from sim_eval.metrics.polygon_map_query import LaneSpec, PolygonMapQuery
from sim_eval.metrics.scenario_score import SUBMETRIC_NAMES, ScenarioScore, combine_scores, score_episode

__all__ = [
    "AGENT_KINDS",
    "CollisionEvent",
    "CollisionType",
    "EpisodeLog",
    "HierarchicalMean",
    "LaneSpec",
    "MapQuery",
    "NcapInfo",
    "NcapRunResult",
    "PolygonMapQuery",
    "SUBMETRIC_NAMES",
    "ScenarioScore",
    "aggregate",
    "combine_scores",
    "find_collisions",
    "first_contact_steps",
    "hierarchical_mean",
    "ncap_run_score",
    "score_episode",
]
