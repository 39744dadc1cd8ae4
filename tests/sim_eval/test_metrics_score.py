"""Analytic oracles for the closed-loop metrics: each nuPlan sub-metric, the scenario score,
NeuroNCAP and suite aggregation, on hand-placed straight-road episodes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sim_eval.metrics import (
    CollisionType,
    EpisodeLog,
    LaneSpec,
    NcapInfo,
    PolygonMapQuery,
    ScenarioScore,
    aggregate,
    find_collisions,
    ncap_run_score,
    score_episode,
)
from sim_eval.metrics.comfort import comfort_score, comfort_signals
from sim_eval.metrics.driving_direction import driving_direction_compliance_score, max_wrong_way_progress_m
from sim_eval.metrics.progress import ego_progress_along_route_m, ego_progress_score, making_progress_score
from sim_eval.metrics.speed_limit import overspeed_mps, speed_limit_compliance_score
from sim_eval.metrics.time_to_collision import time_to_collision_s

DT = 0.1
# nuPlan Pacifica: rear axle to front 4.049 m, to rear 1.127 m, width 2.297 m.
EGO_LENGTH, EGO_WIDTH, REAR_TO_CENTER = 4.049 + 1.127, 2.297, (4.049 - 1.127) / 2
EGO_FRONT = 4.049  # rear axle to front bumper [m]
LANE_WIDTH, SPEED_LIMIT = 3.5, 15.0


@pytest.fixture(scope="module")
def road() -> PolygonMapQuery:
    """Two +x lanes (y = 0 and y = 3.5); drivable area y in [-1.75, 5.25]."""
    lanes = [
        LaneSpec(np.array([[-200.0, y], [600.0, y]]), LANE_WIDTH, SPEED_LIMIT) for y in (0.0, LANE_WIDTH)
    ]
    return PolygonMapQuery.from_lanes(lanes)


def agent(x: np.ndarray, y: float | np.ndarray, vx: float | np.ndarray, kind: str = "vehicle",
          yaw: float = 0.0, length: float = 4.5, width: float = 2.0) -> dict:
    steps = len(x)
    xyyaw = np.stack([x, np.broadcast_to(y, (steps,)), np.full(steps, yaw)], axis=-1)
    velocity = np.stack([np.broadcast_to(vx, (steps,)), np.zeros(steps)], axis=-1)
    return {"xyyaw": xyyaw, "velocity": velocity, "kind": kind, "length": length, "width": width}


def make_log(ego_x: np.ndarray, ego_speed: np.ndarray, *, ego_y: float | np.ndarray = 0.0, ego_yaw: float = 0.0,
             agents: list[dict] | None = None, expert_progress_m: float | None = None,
             ncap: NcapInfo | None = None, failure_reason: str | None = None) -> EpisodeLog:
    steps = len(ego_x)
    agents = agents or []
    ego_center_x = np.asarray(ego_x) + REAR_TO_CENTER * math.cos(ego_yaw)
    return EpisodeLog.from_states(
        episode_id="test",
        time_s=np.arange(steps) * DT,
        ego_xyyaw=np.stack([ego_x, np.broadcast_to(ego_y, (steps,)), np.full(steps, ego_yaw)], axis=-1),
        ego_speed_mps=np.asarray(ego_speed, dtype=float),
        length_m=EGO_LENGTH,
        width_m=EGO_WIDTH,
        rear_axle_to_center_m=REAR_TO_CENTER,
        agent_xyyaw=np.stack([a["xyyaw"] for a in agents], axis=1) if agents else np.zeros((steps, 0, 3)),
        agent_velocity_xy=np.stack([a["velocity"] for a in agents], axis=1) if agents else np.zeros((steps, 0, 2)),
        agent_length_m=[a["length"] for a in agents],
        agent_width_m=[a["width"] for a in agents],
        agent_kind=[a["kind"] for a in agents],
        agent_valid=np.ones((steps, len(agents)), dtype=bool),
        route_xy=np.array([[-200.0, 0.0], [600.0, 0.0]]),
        expert_progress_m=float(ego_center_x[-1] - ego_center_x[0]) if expert_progress_m is None else expert_progress_m,
        ncap=ncap,
        failure_reason=failure_reason,
    )


def constant_speed(speed: float, duration_s: float, x0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(round(duration_s / DT)) + 1) * DT
    return x0 + speed * t, np.full(t.shape, speed)


# nuPlan score ------------------------------------------------------------------------------


def test_constant_velocity_on_empty_straight_scores_one(road):
    x, v = constant_speed(10.0, 8.0)
    result = score_episode(make_log(x, v), road)
    assert result.submetrics == {name: 1.0 for name in result.submetrics}
    assert result.score == pytest.approx(1.0)
    assert not result.collided and math.isinf(result.min_ttc_s)
    assert result.ego_progress_m == pytest.approx(80.0)


def test_head_on_collision_is_at_fault_and_scores_zero(road):
    x, v = constant_speed(10.0, 3.0)
    oncoming = agent(40.0 - 10.0 * np.arange(len(x)) * DT, 0.0, -10.0, yaw=math.pi)
    log = make_log(x, v, agents=[oncoming])
    (event,) = find_collisions(log, road)
    assert event.collision_type is CollisionType.ACTIVE_FRONT and event.at_fault
    assert event.relative_speed_mps == pytest.approx(20.0)
    result = score_episode(log, road)
    assert result.no_at_fault_collisions == 0.0
    assert result.time_to_collision_within_bound == 0.0
    assert result.score == 0.0 and result.collided


def test_agent_rear_ending_a_stopped_ego_is_not_ego_fault(road):
    steps = 31
    x = np.zeros(steps)
    follower = agent(-12.0 + 5.0 * np.arange(steps) * DT, 0.0, 5.0)
    log = make_log(x, np.zeros(steps), agents=[follower], expert_progress_m=0.0)
    (event,) = find_collisions(log, road)
    assert event.collision_type is CollisionType.STOPPED_EGO and not event.at_fault
    result = score_episode(log, road)
    assert result.collided and result.no_at_fault_collisions == 1.0
    assert result.score == pytest.approx(1.0)  # stopped ego: no TTC, expert also stood still


def test_agent_rear_ending_a_moving_ego_is_active_rear_not_at_fault(road):
    x, v = constant_speed(5.0, 3.0)
    follower = agent(-10.0 + 10.0 * np.arange(len(x)) * DT, 0.0, 10.0)
    (event,) = find_collisions(make_log(x, v, agents=[follower]), road)
    assert event.collision_type is CollisionType.ACTIVE_REAR and not event.at_fault


def test_static_object_hits_count_once_each(road):
    x, v = constant_speed(5.0, 4.0)
    steps = len(x)
    cone = agent(np.full(steps, 10.0), 0.0, 0.0, kind="static", length=0.5, width=0.5)
    barrier = agent(np.full(steps, 14.0), 0.0, 0.0, kind="static", length=0.5, width=0.5)
    one = score_episode(make_log(x, v, agents=[cone]), road)
    assert one.num_collisions == 1 and one.num_at_fault_collisions == 1  # overlaps for many steps, counted once
    assert one.no_at_fault_collisions == 0.5
    two = score_episode(make_log(x, v, agents=[cone, barrier]), road)
    assert two.num_at_fault_collisions == 2 and two.no_at_fault_collisions == 0.0 and two.score == 0.0


def test_lateral_collision_at_fault_only_when_straddling_lanes(road):
    x, v = constant_speed(10.0, 2.0)
    steps = len(x)
    # A car in the left lane drifts right into the ego's side at the same speed.
    drift_y = np.linspace(3.5, 1.2, steps)
    swiper = agent(x + REAR_TO_CENTER, drift_y, 10.0)
    (in_lane,) = find_collisions(make_log(x, v, agents=[swiper]), road)
    assert in_lane.collision_type is CollisionType.ACTIVE_LATERAL and not in_lane.at_fault
    swiper_vs_straddling = agent(x + REAR_TO_CENTER, drift_y + 1.75, 10.0)
    (straddling,) = find_collisions(make_log(x, v, ego_y=1.75, agents=[swiper_vs_straddling]), road)
    assert straddling.collision_type is CollisionType.ACTIVE_LATERAL and straddling.at_fault


def test_drivable_area_half_a_metre_off_the_edge(road):
    x, v = constant_speed(10.0, 3.0)
    half_width = EGO_WIDTH / 2
    off = score_episode(make_log(x, v, ego_y=-1.75 - 0.5 + half_width), road)
    assert off.max_outside_drivable_m == pytest.approx(0.5)
    assert off.drivable_area_compliance == 0.0 and off.score == 0.0
    slightly = score_episode(make_log(x, v, ego_y=-1.75 - 0.2 + half_width), road)
    assert slightly.drivable_area_compliance == 1.0


@pytest.mark.parametrize("speed, duration_s, expected", [(3.0, 3.0, 0.5), (7.0, 2.0, 0.0), (1.0, 3.0, 1.0)])
def test_driving_the_wrong_way(road, speed, duration_s, expected):
    x, v = constant_speed(-speed, duration_s, x0=50.0)
    log = make_log(x, np.abs(v), ego_yaw=math.pi)
    wrong_way = max_wrong_way_progress_m(log, road)
    # nuPlan's window sums the progress of 11 samples (steps i-10 .. i) at dt 0.1 s.
    assert wrong_way == pytest.approx(min(speed * 1.1, speed * duration_s))
    assert driving_direction_compliance_score(wrong_way) == expected


def test_speeding_full_and_half_duration(road):
    x, _ = constant_speed(SPEED_LIMIT, 10.0)
    steps = len(x)  # 101 samples, 10 s
    over = np.full(steps, SPEED_LIMIT + 2.23)
    log = make_log(x, over)
    assert speed_limit_compliance_score(overspeed_mps(log, road), log.dt_s, log.duration_s) == 0.0
    half = np.where(np.arange(steps) < 50, SPEED_LIMIT + 2.23, SPEED_LIMIT)
    log = make_log(x, half)
    assert speed_limit_compliance_score(overspeed_mps(log, road), log.dt_s, log.duration_s) == pytest.approx(0.5)
    assert score_episode(make_log(x, np.full(steps, SPEED_LIMIT)), road).speed_limit_compliance == 1.0


def test_lead_car_closing_at_half_a_second_fails_ttc(road):
    t = np.arange(3) * DT  # short enough that the cars never touch
    x = 10.0 * t
    lead_center = EGO_FRONT + 2.5 + 4.5 / 2  # 2.5 m bumper gap, closing at 5 m/s
    lead = agent(lead_center + 5.0 * t, 0.0, 5.0)
    log = make_log(x, np.full(3, 10.0), agents=[lead])
    ttc = time_to_collision_s(log, find_collisions(log, road), np.zeros(3, dtype=bool))
    assert ttc == pytest.approx([0.5, 0.4, 0.3])  # the gap shrinks by 0.5 m per step
    result = score_episode(log, road)
    assert not result.collided and result.min_ttc_s == pytest.approx(0.3)
    assert result.time_to_collision_within_bound == 0.0
    far = agent(lead_center + 40.0 + 5.0 * t, 0.0, 5.0)
    assert score_episode(make_log(x, np.full(3, 10.0), agents=[far]), road).time_to_collision_within_bound == 1.0


def test_ttc_ignores_fast_agents_behind(road):
    x, v = constant_speed(5.0, 1.0)
    chaser = agent(-15.0 + 10.0 * np.arange(len(x)) * DT, 0.0, 10.0)
    result = score_episode(make_log(x, v, agents=[chaser]), road)
    assert not result.collided and result.time_to_collision_within_bound == 1.0


def test_hard_brake_is_uncomfortable_gentle_brake_is_not():
    t = np.arange(21) * DT
    for decel, expected in ((6.0, 0.0), (2.0, 1.0)):
        speed = 15.0 - decel * t
        x = 15.0 * t - 0.5 * decel * t**2
        signals = comfort_signals(make_log(x, speed))
        assert signals.lon_accel_mps2[5:-5] == pytest.approx(-decel, abs=1e-6)
        assert comfort_score(signals) == expected


def test_sharp_turn_breaks_yaw_rate_bound():
    t = np.arange(31) * DT
    yaw = 1.2 * t  # 1.2 rad/s > 0.95
    log = EpisodeLog.from_states(
        episode_id="turn", time_s=t, ego_xyyaw=np.stack([np.zeros_like(t), np.zeros_like(t), yaw], -1),
        ego_speed_mps=np.zeros_like(t), length_m=EGO_LENGTH, width_m=EGO_WIDTH,
        rear_axle_to_center_m=REAR_TO_CENTER, agent_xyyaw=np.zeros((31, 0, 3)),
        agent_velocity_xy=np.zeros((31, 0, 2)), agent_length_m=[], agent_width_m=[], agent_kind=[],
        agent_valid=np.zeros((31, 0), bool), route_xy=[[0, 0], [1, 0]], expert_progress_m=0.0)
    signals = comfort_signals(log)
    assert np.abs(signals.yaw_rate_rps).max() == pytest.approx(1.2)
    assert comfort_score(signals) == 0.0


def test_steady_curve_is_comfortable_with_centre_acceleration():
    t = np.arange(101) * DT
    radius, speed = 100.0, 10.0
    yaw = speed * t / radius
    log = EpisodeLog.from_states(
        episode_id="curve", time_s=t,
        ego_xyyaw=np.stack([radius * np.sin(yaw), radius * (1 - np.cos(yaw)), yaw], -1),
        ego_speed_mps=np.full(101, speed), length_m=EGO_LENGTH, width_m=EGO_WIDTH,
        rear_axle_to_center_m=REAR_TO_CENTER, agent_xyyaw=np.zeros((101, 0, 3)),
        agent_velocity_xy=np.zeros((101, 0, 2)), agent_length_m=[], agent_width_m=[], agent_kind=[],
        agent_valid=np.zeros((101, 0), bool), route_xy=[[0, 0], [1, 0]], expert_progress_m=0.0)
    signals = comfort_signals(log)
    assert signals.lat_accel_mps2 == pytest.approx(np.full(101, speed**2 / radius))
    # Centripetal term moves the longitudinal acceleration at the box centre: -yaw_rate^2 * d.
    assert signals.lon_accel_mps2 == pytest.approx(np.full(101, -((speed / radius) ** 2) * REAR_TO_CENTER))
    assert comfort_score(signals) == 1.0


def test_progress_ratio_and_making_progress():
    assert ego_progress_score(10.0, 40.0) == pytest.approx(0.25)
    assert making_progress_score(0.25) == 1.0
    assert ego_progress_score(4.0, 40.0) == pytest.approx(0.1) and making_progress_score(0.1) == 0.0
    assert ego_progress_score(-2.5, 40.0) == 0.0  # moved back more than 2 m
    assert ego_progress_score(-1.0, 1.0) == 1.0  # neither moved: both clamp to 2 m
    assert ego_progress_score(60.0, 40.0) == 1.0


def test_progress_along_route_is_signed():
    x, v = constant_speed(-2.0, 2.0, x0=10.0)
    assert ego_progress_along_route_m(make_log(x, np.abs(v), ego_yaw=math.pi)) == pytest.approx(-4.0)


def test_failed_planner_run_scores_zero_with_reason(road):
    x, v = constant_speed(10.0, 1.0)
    result = score_episode(make_log(x, v, failure_reason="plan has NaN waypoints"), road)
    assert result.score == 0.0 and result.failure_reason == "plan has NaN waypoints"
    assert set(result.submetrics.values()) == {0.0}
    one_step = score_episode(make_log(x[:1], v[:1], failure_reason="raised at first call"), road)
    assert one_step.score == 0.0


def test_single_step_log_without_failure_is_rejected(road):
    x, v = constant_speed(10.0, 1.0)
    with pytest.raises(ValueError, match="need >= 2"):
        score_episode(make_log(x[:1], v[:1]), road)


# NeuroNCAP and aggregation -----------------------------------------------------------------


def test_ncap_no_collision_scores_five(road):
    x, v = constant_speed(10.0, 2.0)
    info = NcapInfo(scenario_type="stationary", scenario_id="s0", v_ref_mps=10.0)
    result = ncap_run_score(make_log(x, v, ncap=info))
    assert result.score == 5.0 and not result.collided and result.impact_speed_mps is None


def test_ncap_impact_at_half_reference_speed_scores_two(road):
    # Ego at 5 m/s into a stationary car; the run stops at the first contact, as in NeuroNCAP.
    obstacle_rear = 10.0
    steps = int(round((obstacle_rear - EGO_FRONT) / 5.0 / DT)) + 2
    x, v = 5.0 * np.arange(steps) * DT, np.full(steps, 5.0)
    car = agent(np.full(steps, obstacle_rear + 2.25), 0.0, 0.0)
    info = NcapInfo(scenario_type="stationary", scenario_id="s0", v_ref_mps=10.0)
    log = make_log(x, v, agents=[car], ncap=info)
    result = ncap_run_score(log)
    assert result.collided and result.impact_speed_mps == pytest.approx(5.0)
    assert result.score == pytest.approx(2.0)
    assert score_episode(log, road).ncap_score == pytest.approx(2.0)


def test_ncap_requires_ncap_info():
    x, v = constant_speed(10.0, 1.0)
    with pytest.raises(ValueError, match="NcapInfo"):
        ncap_run_score(make_log(x, v))


def _row(score: float, ncap_score: float | None, scenario_type: str | None, scenario_id: str | None,
         collided: bool) -> ScenarioScore:
    return ScenarioScore(
        episode_id=f"{scenario_id}", no_at_fault_collisions=1.0, drivable_area_compliance=1.0,
        driving_direction_compliance=1.0, making_progress=1.0, ego_progress=score,
        time_to_collision_within_bound=1.0, speed_limit_compliance=1.0, comfort=1.0, score=score,
        collided=collided, num_collisions=int(collided), num_at_fault_collisions=0, min_ttc_s=math.inf,
        ego_progress_m=10.0, expert_progress_m=10.0, max_outside_drivable_m=0.0, max_wrong_way_m=0.0,
        duration_s=5.0, scenario_type=scenario_type, scenario_id=scenario_id, ncap_score=ncap_score,
        impact_speed_mps=None)


def test_aggregate_ncap_per_scenario_then_type_then_overall():
    rows = [
        _row(1.0, 5.0, "stationary", "a1", False),
        _row(1.0, 5.0, "stationary", "a1", False),
        _row(0.0, 1.0, "stationary", "a1", True),
        _row(0.0, 0.0, "stationary", "a2", True),
        _row(0.5, 4.0, "frontal", "b1", True),
    ]
    summary = aggregate(rows).to_dict()
    assert set(summary) == {"score", "ncap_score", "collision_rate", "submetrics", "episodes"}
    stationary = (11.0 / 3.0 + 0.0) / 2.0
    assert summary["submetrics"]["ncap_score/stationary"] == pytest.approx(stationary)
    assert summary["submetrics"]["ncap_score/frontal"] == pytest.approx(4.0)
    assert summary["ncap_score"] == pytest.approx((stationary + 4.0) / 2.0)
    stationary_collisions = (1.0 / 3.0 + 1.0) / 2.0
    assert summary["collision_rate"] == pytest.approx((stationary_collisions + 1.0) / 2.0)
    assert summary["score"] == pytest.approx(2.5 / 5)
    assert summary["submetrics"]["ego_progress"] == pytest.approx(2.5 / 5)
    assert len(summary["episodes"]) == 5
    json.dumps(summary, allow_nan=False)  # inf TTC must not leak into the JSON


def test_aggregate_nominal_suite(road):
    x, v = constant_speed(10.0, 2.0)
    clean = score_episode(make_log(x, v), road)
    crashed = score_episode(make_log(x, v, agents=[agent(40.0 - 10.0 * np.arange(len(x)) * DT, 0.0, -10.0,
                                                         yaw=math.pi)]), road)
    metrics = aggregate([clean, crashed])
    assert metrics.failure_rate == 0.0
    summary = metrics.to_dict()
    assert summary["ncap_score"] is None
    assert summary["collision_rate"] == 0.5
    assert summary["score"] == pytest.approx(0.5)
    assert summary["submetrics"]["no_at_fault_collisions"] == 0.5
    json.dumps(summary, allow_nan=False)
    with pytest.raises(ValueError, match="no scenario scores"):
        aggregate([])


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_ttc_matches_brute_force_shapely_projection(seed):
    """The swept-circle prefilter must not change TTC: compare with a per-offset shapely check."""
    from shapely.geometry import Polygon

    from contract.footprint import box_corners
    from sim_eval.metrics.collisions import relative_angle_rad

    rng = np.random.default_rng(seed)
    steps, num_agents = 8, 10
    x, v = constant_speed(8.0, (steps - 1) * DT)
    agents = []
    for _ in range(num_agents):
        x0, y0 = rng.uniform(8.0, 50.0), rng.uniform(-8.0, 8.0)
        velocity = rng.uniform(-8.0, 8.0, 2)
        yaw = math.atan2(velocity[1], velocity[0])
        xs = x0 + velocity[0] * np.arange(steps) * DT
        ys = y0 + velocity[1] * np.arange(steps) * DT
        a = agent(xs, ys, velocity[0], yaw=yaw)
        a["velocity"][:, 1] = velocity[1]
        agents.append(a)
    log = make_log(x, v, agents=agents)
    ttc = time_to_collision_s(log, [], np.zeros(steps, dtype=bool))

    expected = np.full(steps, np.inf)
    for t in range(steps):
        angles = relative_angle_rad(log.ego_xyyaw[t][None], log.agent_xyyaw[t, :, :2])
        for k in range(1, 30):
            ego = log.ego_center_xyyaw[t].copy()
            ego[:2] += k * DT * log.ego_velocity_xy[t]
            ego_poly = Polygon(box_corners(ego, log.length_m, log.width_m))
            for m in np.flatnonzero(angles < np.deg2rad(30.0)):
                pose = log.agent_xyyaw[t, m].copy()
                pose[:2] += k * DT * log.agent_velocity_xy[t, m]
                if ego_poly.intersects(Polygon(box_corners(pose, 4.5, 2.0))):
                    expected[t] = min(expected[t], k * DT)
    assert np.isfinite(expected).any()  # the oracle exercises real conflicts
    np.testing.assert_allclose(ttc, expected)
