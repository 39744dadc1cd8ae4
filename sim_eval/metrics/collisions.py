"""Ego-agent collisions: first contact per agent and nuPlan's at-fault classification."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from contract.footprint import FRONT_LEFT, FRONT_RIGHT, convex_overlap
from sim_eval.metrics.episode_log import EpisodeLog
from sim_eval.metrics.map_query import MapQuery

STOPPED_SPEED_THRESHOLD_MPS = 5e-2  # nuPlan: speeds at or below this count as stopped
BEHIND_ANGLE_DEG = 150.0  # nuPlan is_agent_behind
AHEAD_ANGLE_DEG = 30.0  # nuPlan is_agent_ahead
OFF_ROAD_TOLERANCE_M = 0.0  # any corner outside the drivable area makes ego "off-road"


class CollisionType(str, enum.Enum):
    STOPPED_EGO = "stopped_ego"
    STOPPED_TRACK = "stopped_track"
    ACTIVE_FRONT = "active_front"
    ACTIVE_REAR = "active_rear"
    ACTIVE_LATERAL = "active_lateral"


@dataclass(frozen=True)
class CollisionEvent:
    """First contact between the ego and one agent.

    relative_speed_mps: |v_ego - v_agent| [m/s] (world-frame vectors) at the contact step.
    """

    agent_index: int
    step: int
    time_s: float
    agent_kind: str
    collision_type: CollisionType
    at_fault: bool
    relative_speed_mps: float


def overlap_matrix(log: EpisodeLog) -> np.ndarray:
    """(T, M) bool: ego footprint overlaps the (valid) agent footprint at each step."""
    if log.num_agents == 0:
        return np.zeros((log.num_steps, 0), dtype=bool)
    overlap = convex_overlap(log.ego_corners_xy[:, None], log.agent_corners_xy)
    return overlap & log.agent_valid


def first_contact_steps(log: EpisodeLog) -> np.ndarray:
    """(M,) int step of each agent's first overlap with the ego, -1 if it never overlaps."""
    overlap = overlap_matrix(log)
    return np.where(overlap.any(axis=0), overlap.argmax(axis=0), -1)


def relative_angle_rad(pose_xyyaw: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    """Unsigned angle [rad] between a heading and the direction to points (0 when coincident).

    pose_xyyaw (..., 3), points_xy (..., 2) broadcast.
    """
    delta = points_xy - pose_xyyaw[..., :2]
    norm = np.linalg.norm(delta, axis=-1)
    cos = (np.cos(pose_xyyaw[..., 2]) * delta[..., 0] + np.sin(pose_xyyaw[..., 2]) * delta[..., 1]) / np.where(
        norm > 0, norm, 1.0
    )
    return np.where(norm > 0, np.arccos(np.clip(cos, -1.0, 1.0)), 0.0)


def ego_in_multiple_lanes_or_off_road(log: EpisodeLog, map_query: MapQuery) -> np.ndarray:
    """(T,) bool: the ego footprint straddles lanes or has a corner outside the drivable area."""
    corners = log.ego_corners_xy
    outside = map_query.distance_outside_drivable(corners.reshape(-1, 2)).reshape(-1, 4)
    return np.asarray(map_query.straddles_lanes(corners), dtype=bool) | (outside > OFF_ROAD_TOLERANCE_M).any(axis=1)


def _classify(log: EpisodeLog, step: int, agent: int) -> CollisionType:
    if abs(log.ego_speed_mps[step]) <= STOPPED_SPEED_THRESHOLD_MPS:
        return CollisionType.STOPPED_EGO
    if log.agent_kind[agent] == "static" or abs(log.agent_speed_mps[step, agent]) <= STOPPED_SPEED_THRESHOLD_MPS:
        return CollisionType.STOPPED_TRACK
    angle = relative_angle_rad(log.ego_xyyaw[step], log.agent_xyyaw[step, agent, :2])
    if angle > np.deg2rad(BEHIND_ANGLE_DEG):
        return CollisionType.ACTIVE_REAR
    ego_corners = log.ego_corners_xy[step]
    front_bumper = ego_corners[[FRONT_LEFT, FRONT_RIGHT]]
    if convex_overlap(front_bumper, log.agent_corners_xy[step, agent]):
        return CollisionType.ACTIVE_FRONT
    return CollisionType.ACTIVE_LATERAL


def find_collisions(log: EpisodeLog, map_query: MapQuery | None) -> tuple[CollisionEvent, ...]:
    """Every agent's first contact with the ego, classified as in nuPlan, ordered by step.

    Classification at the contact step, in this order: ego speed <= 0.05 m/s -> stopped_ego
    (not at fault); agent stopped or static -> stopped_track (at fault); agent centre more than
    150 deg off the ego heading (seen from the rear axle) -> active_rear (not at fault); the ego
    front bumper segment touches the agent box -> active_front (at fault); otherwise
    active_lateral, at fault iff the ego straddles lanes or is off-road. Each agent counts once.
    With map_query None, lateral collisions are marked not at fault.
    """
    steps = first_contact_steps(log)
    lateral_at_fault = (
        ego_in_multiple_lanes_or_off_road(log, map_query)
        if map_query is not None and (steps >= 0).any()
        else np.zeros(log.num_steps, dtype=bool)
    )
    ego_velocity = log.ego_velocity_xy
    events = []
    for agent in np.flatnonzero(steps >= 0):
        step = int(steps[agent])
        collision_type = _classify(log, step, int(agent))
        at_fault = collision_type in (CollisionType.STOPPED_TRACK, CollisionType.ACTIVE_FRONT) or (
            collision_type is CollisionType.ACTIVE_LATERAL and bool(lateral_at_fault[step])
        )
        relative_speed = float(np.linalg.norm(ego_velocity[step] - log.agent_velocity_xy[step, agent]))
        events.append(
            CollisionEvent(
                agent_index=int(agent),
                step=step,
                time_s=float(log.time_s[step]),
                agent_kind=str(log.agent_kind[agent]),
                collision_type=collision_type,
                at_fault=at_fault,
                relative_speed_mps=relative_speed,
            )
        )
    return tuple(sorted(events, key=lambda event: (event.step, event.agent_index)))
