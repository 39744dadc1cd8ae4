"""The contract: observation validation, plan validation reasons, ego <-> world transforms, declared
planner capabilities, and the package rule (planner/ and sim_eval/ never import each other)."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from contract import EpisodeInfo, Observation, Plan, Planner, PrivilegedState, ego_to_world, validate_plan, world_to_ego
from data.command import Command

ROOT = Path(__file__).resolve().parents[2]


def make_observation(**overrides) -> Observation:
    fields = dict(
        frames_rgb=np.zeros((2, 4, 6, 3), dtype=np.uint8),
        frame_timestamps_s=np.array([9.5, 10.0]),
        ego_history_xyyaw=np.array([[-4.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
        ego_history_timestamps_s=np.array([9.5, 10.0]),
        speed_mps=8.0,
        accel_mps2=0.0,
        yaw_rate_rps=0.0,
        command=2,
        camera_intrinsics=np.array([[100.0, 0.0, 3.0], [0.0, 100.0, 2.0], [0.0, 0.0, 1.0]]),
        time_s=10.0,
    )
    fields.update(overrides)
    return Observation(**fields)


def test_observation_is_validated_and_read_only():
    observation = make_observation()
    assert observation.command is Command.STRAIGHT and observation.privileged is None
    with pytest.raises(ValueError):
        observation.frames_rgb[0, 0, 0, 0] = 1
    with pytest.raises(ValueError):
        observation.ego_history_xyyaw[0, 0] = 1.0


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(frames_rgb=np.zeros((2, 4, 6, 3), dtype=np.float32)), "frames_rgb"),
        (dict(frames_rgb=np.zeros((2, 4, 6), dtype=np.uint8)), "frames_rgb"),
        (dict(frame_timestamps_s=np.array([10.0, 9.5])), "frame_timestamps_s"),
        (dict(frame_timestamps_s=np.array([10.0, 10.5])), "frame_timestamps_s"),
        (dict(ego_history_xyyaw=np.array([[-4.0, 0.0, 0.0], [1.0, 0.0, 0.0]])), "ego_history_xyyaw"),
        (dict(ego_history_xyyaw=np.array([[np.nan, 0.0, 0.0], [0.0, 0.0, 0.0]])), "ego_history_xyyaw"),
        (dict(ego_history_timestamps_s=np.array([9.0, 9.5])), "ego_history_timestamps_s"),
        (dict(speed_mps=float("inf")), "speed_mps"),
        (dict(command=7), "command"),
        (dict(camera_intrinsics=np.eye(3)[:2]), "camera_intrinsics"),
        (dict(privileged=[1, 2]), "privileged"),
        (dict(camera_extrinsics=np.eye(4)), "camera_extrinsics"),  # the mount is a data.schema.CameraExtrinsics
    ],
)
def test_bad_observations_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        make_observation(**overrides)


def test_plan_keeps_a_read_only_copy():
    waypoints = np.zeros((8, 2))
    plan = Plan(waypoints=waypoints, dt_s=0.5)
    waypoints[0, 0] = 99.0
    assert plan.waypoints[0, 0] == 0.0 and not plan.waypoints.flags.writeable
    np.testing.assert_allclose(plan.times_s, 0.5 * np.arange(1, 9))
    assert plan.num_waypoints == 8 and not plan.has_yaw


def test_plan_constructor_rejects_what_is_not_a_plan():
    with pytest.raises(ValueError, match=r"\(K, 2\) or \(K, 3\)"):
        Plan(waypoints=np.zeros((8, 4)), dt_s=0.5)
    with pytest.raises(TypeError, match="floating"):
        Plan(waypoints=np.zeros((8, 2), dtype=np.int64), dt_s=0.5)
    with pytest.raises(TypeError, match="floating"):
        Plan(waypoints=[[0.0, 0.0]], dt_s=0.5)


def _straight(k: int = 8, speed: float = 5.0, dt: float = 0.5) -> np.ndarray:
    return np.stack([speed * dt * np.arange(1, k + 1), np.zeros(k)], axis=1)


def test_validate_plan_accepts_a_good_plan():
    assert validate_plan(Plan(waypoints=_straight(), dt_s=0.5), expected_k=8, expected_dt_s=0.5) is None


def test_validate_plan_reasons():
    nan_plan = _straight()
    nan_plan[3, 1] = np.nan
    inf_plan = np.concatenate([_straight(), np.zeros((8, 1))], axis=1)
    inf_plan[5, 2] = np.inf
    far = _straight()
    far[-1, 0] = 250.0
    fast = _straight()
    fast[0, 0] = 40.0  # 40 m in the first 0.5 s
    cases = {
        "NaN at rows [3]": Plan(waypoints=nan_plan, dt_s=0.5),
        "inf at rows [5]": Plan(waypoints=inf_plan, dt_s=0.5),
        "6 waypoints, expected 8": Plan(waypoints=_straight(6), dt_s=0.5),
        "expected 0.5 s": Plan(waypoints=_straight(), dt_s=0.1),
        "dt_s must be finite": Plan(waypoints=_straight(), dt_s=float("nan")),
        "250.0 m from the ego": Plan(waypoints=far, dt_s=0.5),
        "80.0 m/s": Plan(waypoints=fast, dt_s=0.5),
        "returned ndarray, not a Plan": _straight(),
        "returned NoneType, not a Plan": None,
    }
    for expected, plan in cases.items():
        reason = validate_plan(plan, expected_k=8, expected_dt_s=0.5)
        assert reason is not None and expected in reason, (expected, reason)


def test_ego_world_transforms():
    pose = np.array([10.0, 5.0, math.pi / 2])
    np.testing.assert_allclose(ego_to_world(np.array([1.0, 0.0]), pose), [10.0, 6.0], atol=1e-12)
    np.testing.assert_allclose(ego_to_world(np.array([0.0, 2.0, 0.1]), pose), [8.0, 5.0, math.pi / 2 + 0.1], atol=1e-12)
    rng = np.random.default_rng(0)
    points = rng.normal(scale=20.0, size=(16, 3))
    pose = np.array([-3.0, 7.0, 2.5])
    np.testing.assert_allclose(world_to_ego(ego_to_world(points, pose), pose), points, atol=1e-9)
    np.testing.assert_allclose(world_to_ego(pose[None], pose), np.zeros((1, 3)), atol=1e-12)
    with pytest.raises(ValueError, match="ego_pose_xyyaw"):
        ego_to_world(points, np.array([0.0, 0.0]))


class _Straight(Planner):
    """A minimal complete planner: 4 waypoints every 0.5 s at the current speed."""

    name = "straight"

    @property
    def num_waypoints(self) -> int:
        return 4

    @property
    def plan_dt_s(self) -> float:
        return 0.5

    def reset(self, episode: EpisodeInfo) -> None:
        self.episode = episode.episode_id

    def plan(self, observation: Observation) -> Plan:
        return Plan(_straight(4, observation.speed_mps), 0.5)


def test_planner_must_implement_reset_plan_and_declare_its_plans():
    class NoDeclarations(Planner):
        def reset(self, episode):
            pass

        def plan(self, observation):
            return None

    with pytest.raises(TypeError, match="num_waypoints"):
        NoDeclarations()
    planner = _Straight()
    assert (planner.privileged, planner.uses_camera, planner.predicts_frames, planner.batched) == (False, True, False, False)
    assert planner.predicted_frame is None
    with pytest.raises(NotImplementedError, match="does not predict frames"):
        planner.enable_frame_prediction()


def test_plan_batch_asks_each_episode_planner_by_default():
    planners = [_Straight(), _Straight()]
    for i, p in enumerate(planners):
        p.reset(EpisodeInfo(f"smoke/00{i}/seed0"))
    plans = _Straight.plan_batch(planners, [make_observation(speed_mps=2.0), make_observation(speed_mps=4.0)])
    assert [p.waypoints[0, 0] for p in plans] == [1.0, 2.0]
    with pytest.raises(ValueError, match="2 planners for 1 observations"):
        _Straight.plan_batch(planners, [make_observation()])


def test_episode_info_and_privileged_state_are_typed():
    with pytest.raises(ValueError, match="episode_id"):
        EpisodeInfo("")
    ego = type("Ego", (), {"x_m": 1.0, "y_m": 2.0, "yaw_rad": 0.5})()
    state = PrivilegedState(scenario=None, world=None, ego=ego)
    np.testing.assert_array_equal(state.ego_pose_xyyaw, [1.0, 2.0, 0.5])
    assert make_observation(privileged=state).privileged is state


def _imports(package: str) -> set[tuple[str, str]]:
    """(file, top-level package) of every import statement in `package`, at any depth of the module."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), alias.name.split(".")[0]) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add((str(path.relative_to(ROOT)), node.module.split(".")[0]))
    return found


def test_planner_and_simulator_never_import_each_other():
    assert sorted(f for f, top in _imports("planner") if top == "sim_eval") == []
    assert sorted(f for f, top in _imports("sim_eval") if top == "planner") == []
    assert sorted(f for f, top in _imports("contract") if top in ("planner", "foresight")) == []
