"""Weighted: time to collision within bound (nuPlan `time_to_collision_within_bound`)."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from contract.footprint import box_corners, convex_overlap
from sim_eval.metrics.collisions import (
    AHEAD_ANGLE_DEG,
    BEHIND_ANGLE_DEG,
    CollisionEvent,
    relative_angle_rad,
)
from sim_eval.metrics.episode_log import EpisodeLog

TIME_STEP_S = 0.1
TIME_HORIZON_S = 3.0
LEAST_MIN_TTC_S = 0.95
EGO_STOPPED_SPEED_MPS = 5e-3
_CHUNK_PAIRS = 1024  # bounds memory: (pairs, K, 4, 2) boxes at a time


def time_to_collision_s(
    log: EpisodeLog,
    collisions: Iterable[CollisionEvent],
    ego_in_multiple_lanes_or_off_road: np.ndarray,
    time_step_s: float = TIME_STEP_S,
    time_horizon_s: float = TIME_HORIZON_S,
) -> np.ndarray:
    """(T,) [s] TTC per step under constant-velocity projection, inf where none within the horizon.

    Rule (nuPlan): the ego box moves along its heading at its current speed, agent boxes move with
    their current velocity vectors; both are checked at k * 0.1 s for k = 1 .. 29 (up to 3 s,
    exclusive) and TTC is the first k * 0.1 s with any overlap. Agents considered at step t: valid,
    not yet collided with the ego (an agent is dropped from its first contact step on), and either
    ahead of the ego (centre within 30 deg of the heading, seen from the rear axle) or, while the
    ego straddles lanes or is off-road, anywhere not behind it (not beyond 150 deg). TTC is 0 at
    the step of an at-fault collision and inf while the ego is stopped (speed <= 5e-3 m/s).
    """
    steps, agents = log.num_steps, log.num_agents
    ttc = np.full(steps, np.inf)
    events = list(collisions)
    if agents > 0:
        first_contact = np.full(agents, steps)
        for event in events:
            first_contact[event.agent_index] = min(first_contact[event.agent_index], event.step)
        not_collided = np.arange(steps)[:, None] < first_contact[None, :]  # (T, M)
        angle = relative_angle_rad(log.ego_xyyaw[:, None, :], log.agent_xyyaw[..., :2])  # (T, M)
        ahead = angle < np.deg2rad(AHEAD_ANGLE_DEG)
        not_behind = angle <= np.deg2rad(BEHIND_ANGLE_DEG)
        lateral_ok = np.asarray(ego_in_multiple_lanes_or_off_road, dtype=bool)[:, None]
        relevant = log.agent_valid & not_collided & (ahead | (lateral_ok & not_behind))
        moving = np.abs(log.ego_speed_mps) > EGO_STOPPED_SPEED_MPS
        offsets_s = np.arange(1, int(round(time_horizon_s / time_step_s))) * time_step_s  # (K,)
        horizon_s = offsets_s[-1] if offsets_s.size else 0.0

        # Conservative prefilter (nuPlan uses swept boxes): circles bounding each box's sweep over
        # the horizon; only pairs whose circles meet get the exact per-offset box test.
        ego_center = log.ego_center_xyyaw
        ego_velocity = log.ego_velocity_xy
        ego_sweep_center = ego_center[:, :2] + 0.5 * horizon_s * ego_velocity  # (T, 2)
        ego_radius = 0.5 * math.hypot(log.length_m, log.width_m) + 0.5 * horizon_s * np.linalg.norm(
            ego_velocity, axis=-1
        )
        agent_sweep_center = log.agent_xyyaw[..., :2] + 0.5 * horizon_s * log.agent_velocity_xy  # (T, M, 2)
        agent_radius = 0.5 * np.hypot(log.agent_length_m, log.agent_width_m) + 0.5 * horizon_s * np.linalg.norm(
            log.agent_velocity_xy, axis=-1
        )
        gap = np.linalg.norm(agent_sweep_center - ego_sweep_center[:, None], axis=-1)
        candidate = relevant & moving[:, None] & (gap <= ego_radius[:, None] + agent_radius)
        step_idx, agent_idx = np.nonzero(candidate)
        for begin in range(0, step_idx.size, _CHUNK_PAIRS):
            t_idx = step_idx[begin : begin + _CHUNK_PAIRS]
            m_idx = agent_idx[begin : begin + _CHUNK_PAIRS]
            ego_future = np.repeat(ego_center[t_idx, None, :], offsets_s.size, axis=1)  # (P, K, 3)
            ego_future[..., :2] += offsets_s[None, :, None] * ego_velocity[t_idx, None, :]
            agent_future = np.repeat(log.agent_xyyaw[t_idx, m_idx, None, :], offsets_s.size, axis=1)  # (P, K, 3)
            agent_future[..., :2] += offsets_s[None, :, None] * log.agent_velocity_xy[t_idx, m_idx, None, :]
            ego_box = box_corners(ego_future, log.length_m, log.width_m)  # (P, K, 4, 2)
            agent_box = box_corners(
                agent_future, log.agent_length_m[m_idx, None], log.agent_width_m[m_idx, None]
            )  # (P, K, 4, 2)
            hit = convex_overlap(ego_box, agent_box)  # (P, K)
            pair_ttc = np.where(hit.any(axis=1), offsets_s[hit.argmax(axis=1)], np.inf)
            np.minimum.at(ttc, t_idx, pair_ttc)

    for event in events:
        if event.at_fault:
            ttc[event.step] = 0.0
    return ttc


def ttc_within_bound_score(ttc_s: np.ndarray, least_min_ttc_s: float = LEAST_MIN_TTC_S) -> float:
    """1 iff every per-step TTC exceeds 0.95 s, else 0."""
    return float(np.all(np.asarray(ttc_s) > least_min_ttc_s))
