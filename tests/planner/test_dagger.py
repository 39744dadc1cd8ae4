"""DAgger rounds (`foresight train planner ... dagger.rounds=N`) on the tiny pipeline: the windows a
round adds are labelled with the privileged expert's plan from the state the planner visited
(checked against direct expert calls), rounds resume after a kill with the same result, and
evaluation scenario seeds never reach DAgger data."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from configs import compose
from contract import EpisodeInfo, Observation, PrivilegedState, world_to_ego
from data.route_points import route_path
from data.store.reader import ClipStore
from foresight.cli import main
from foresight.dagger import ROUNDS_FILE, rollout_runner
from foresight.dagger_config import DaggerRoundDir
from foresight.dagger_rollout import RolloutSettings, record_rollout, record_round, weights_sha256
from foresight.training import TrainerSettings, inference_precision
from planner.dagger_labels import read_labels, write_labels
from planner.datamodule import PlannerWindowDataset, PlannerWindowSpec
from planner.train import run_train_planner
from planner.vam import VAMPlanner
from sim_eval.agents.expert import ExpertConfig, ExpertPlanner
from sim_eval.seeds import is_evaluation_seed
from sim_eval.synth import SynthEpisode
from tests.planner.conftest import train_args

DAGGER = ["dagger.episodes_per_round=1", "dagger.suites=[nominal]", "dagger.steps_per_round=4", "dagger.workers=1",
          "dagger.validation_episodes=1", "planner.inference.n_samples=2"]


def expert_plan_from(state: dict, num_waypoints: int, plan_dt_s: float) -> np.ndarray:
    """(K, 2) a fresh expert's plan (its public `plan`) from a recorded true state."""
    expert = ExpertPlanner(ExpertConfig(**{**ExpertConfig.default().__dict__, "num_waypoints": num_waypoints, "plan_dt_s": plan_dt_s}))
    expert.reset(EpisodeInfo("direct", state["scenario"]))
    t = state["time_s"]
    observation = Observation(
        frames_rgb=np.zeros((1, 1, 1, 3), np.uint8), frame_timestamps_s=np.array([t]), ego_history_xyyaw=np.zeros((1, 3)),
        ego_history_timestamps_s=np.array([t]), speed_mps=state["ego"].speed_mps, accel_mps2=0.0, yaw_rate_rps=0.0, command=2,
        camera_intrinsics=np.diag([100.0, 100.0, 1.0]), time_s=t,
        privileged=PrivilegedState(state["scenario"], state["world"], state["ego"]),
    )
    return np.asarray(expert.plan(observation).waypoints)


def test_a_round_labels_every_visited_state_with_the_experts_plan(trained_planner, tmp_path):
    vam = trained_planner / "vam"
    planner = VAMPlanner.from_checkpoint(vam)
    k, dt = planner.num_waypoints, planner.plan_dt_s
    settings = RolloutSettings(str(vam), weights_sha256(vam), 1, 0.5, rollout_runner(vam))
    episode = SynthEpisode("nominal", 2, 1000)
    record_round(tmp_path / "clips", [episode], settings)

    visited: list[dict] = []  # the true states at the clip's frames, from a rerun of the same rollout
    clip, _ = record_rollout(episode, settings, on_frame=lambda sim: visited.append(
        {"scenario": sim.scenario, "world": sim.world, "ego": sim.ego, "time_s": sim.time_s}))
    store = ClipStore(tmp_path / "clips")
    assert len(store) == 1 and store.refs[0].clip_id == clip.clip_id
    np.testing.assert_array_equal(store.frame_timestamps_us(0), clip.frame_timestamps_us)  # the rerun drove the same way
    np.testing.assert_array_equal(store.load_frames(0), clip.frames)

    meta = store.meta(0)
    assert meta["extrinsics"] is not None and store.load_clip(0).extrinsics.height_m > 1.0  # the camera mount, like synth's clips
    provenance = meta["provenance"]
    assert provenance["dagger_round"] == 1 and provenance["beta"] == 0.5 and provenance["seed"] == 1000
    assert provenance["source_planner_sha256"] == weights_sha256(vam)
    assert provenance["expert_plans"] > 0 and provenance["planner_plans"] > 0  # both drove

    spec = PlannerWindowSpec(n_observed_frames=3, frame_period_s=0.5, num_waypoints=k, waypoint_dt_s=dt)
    windows = PlannerWindowDataset(store, None, spec, expert_labels=True)
    assert len(windows) == len(visited) == store.refs[0].num_frames
    logged = PlannerWindowDataset(store, None, spec)  # the same clip, targets its own future
    differs = 0
    for i in range(len(windows)):
        window = windows[i]
        j = int(window.frame_index)
        direct = expert_plan_from(visited[j], k, dt)
        np.testing.assert_allclose(window.trajectory[:, :2].numpy(), direct, atol=1e-4)
        assert bool(window.trajectory_valid.all())
        own = [w for w in (logged[n] for n in range(len(logged))) if int(w.frame_index) == j]
        if own:
            valid = own[0].trajectory_valid.numpy()
            differs += float(np.abs(own[0].trajectory[valid, :2].numpy() - direct[valid]).max()) > 0.5
    assert differs > 0  # the label is the expert's plan, not where the planner went
    assert read_labels(tmp_path / "clips", clip.clip_id).plans_xyyaw.shape == (len(visited), k, 3)

    # The route a DAgger window carries is the scenario's route from the visited state (what the
    # closed loop told the planner), not the path the planner then drove.
    routed = PlannerWindowDataset(store, None, dataclasses.replace(spec, route_path=True), expert_labels=True)
    driven = PlannerWindowDataset(store, None, dataclasses.replace(spec, route_path=True))
    driven_by_frame = {int(driven[n].frame_index): driven[n].route_path.numpy() for n in range(len(driven))}
    apart_m = []
    for i in range(len(routed)):
        window = routed[i]
        j = int(window.frame_index)
        np.testing.assert_allclose(window.route_path.numpy(), scenario_route_path(visited[j]), atol=1e-4)
        if j in driven_by_frame:
            apart_m.append(float(np.abs(window.route_path.numpy() - driven_by_frame[j]).max()))
    assert max(apart_m) > 0.1, apart_m  # the planner did not drive its route exactly


def scenario_route_path(state: dict) -> np.ndarray:
    """(M, 2) the scenario's route ahead of a recorded ego state, resampled, in its ego frame."""
    route, ego = state["scenario"].ego_route, state["ego"]
    s_ego = float(route.path.project(np.array([ego.x_m, ego.y_m])).s_m)
    ahead = np.concatenate([[[ego.x_m, ego.y_m]], route.polyline_xy[route.path.s_m > s_ego]])
    return route_path(world_to_ego(ahead, np.array([ego.x_m, ego.y_m, ego.yaw_rad])))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_rollouts_drive_the_planner_at_the_rounds_precision(trained_planner, monkeypatch, precision):
    """RolloutSettings.precision (the run's training precision where the CPU runs it natively) is the
    precision the driving planner is built with."""
    built = []
    original = VAMPlanner.from_checkpoint.__func__

    def spy(cls, path, *args, **kwargs):
        planner = original(cls, path, *args, **kwargs)
        built.append(planner.config.precision)
        return planner

    monkeypatch.setattr(VAMPlanner, "from_checkpoint", classmethod(spy))
    vam = trained_planner / "vam"
    settings = RolloutSettings(str(vam), weights_sha256(vam), 1, 0.5, rollout_runner(vam), precision)
    record_rollout(SynthEpisode("nominal", 2, 1000), settings)
    assert built == [precision]


def test_labels_without_a_route_are_refused_for_a_route_reading_planner(trained_planner, tmp_path):
    vam = trained_planner / "vam"
    planner = VAMPlanner.from_checkpoint(vam)
    settings = RolloutSettings(str(vam), weights_sha256(vam), 1, 0.5, rollout_runner(vam))
    record_round(tmp_path / "clips", [SynthEpisode("nominal", 0, 1000)], settings)
    store = ClipStore(tmp_path / "clips")
    clip_id = store.refs[0].clip_id
    labels = read_labels(tmp_path / "clips", clip_id)
    write_labels(tmp_path / "clips", clip_id, dataclasses.replace(labels, route_path_xy=None))  # a round from before routes
    spec = PlannerWindowSpec(n_observed_frames=2, frame_period_s=0.5, num_waypoints=planner.num_waypoints,
                             waypoint_dt_s=planner.plan_dt_s, route_path=True)
    with pytest.raises(ValueError, match="record no route"):
        PlannerWindowDataset(store, None, spec, expert_labels=True)
    assert len(PlannerWindowDataset(store, None, dataclasses.replace(spec, route_path=False), expert_labels=True)) > 0


def test_evaluation_seeds_are_refused(trained_planner, tiny_pipeline, tmp_path, capsys):
    for bad in ("dagger.seed=0", "dagger.validation_seed=9000", "dagger.seed=995"):  # 995: round 1 cycles into seed 999
        out = tmp_path / bad.replace("=", "_")
        assert main(train_args(tiny_pipeline, out, "dagger.rounds=1", *DAGGER, bad, "dagger.episodes_per_round=50")) != 0
        assert "reserved for evaluation" in capsys.readouterr().err
        assert not out.exists()
    vam = trained_planner / "vam"
    settings = RolloutSettings(str(vam), weights_sha256(vam), 1, 0.5, rollout_runner(vam))
    with pytest.raises(ValueError, match="reserved for evaluation"):
        record_round(tmp_path / "clips", [SynthEpisode("nominal", 0, 0)], settings)
    assert not (tmp_path / "clips").exists()


class KillInThirdFit(Callback):
    """Dies at optimizer step `at_step` of the third training run it sees (round 2's fine-tuning)."""

    def __init__(self, at_step: int) -> None:
        self.at_step, self.fits = at_step, 0

    def on_fit_start(self, trainer, pl_module) -> None:
        self.fits += 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.fits == 3 and trainer.global_step == self.at_step:
            raise RuntimeError("simulated kill")


def _round_outcome(out) -> tuple[list[dict], dict[str, torch.Tensor], list[np.ndarray]]:
    """rounds.json without paths, the final planner's weights and every round's labels."""
    rounds = [{k: v for k, v in r.items() if k not in ("planner", "source_planner")} for r in json.loads((out / "dagger" / ROUNDS_FILE).read_text())]
    weights = load_file(DaggerRoundDir.of(out, 2).vam / "vam.safetensors")
    labels = []
    for r in (1, 2):
        store = ClipStore(DaggerRoundDir.of(out, r).clips)
        labels += [read_labels(store.root, store.refs[i].clip_id).plans_xyyaw for i in range(len(store))]
    return rounds, weights, labels


def test_rounds_run_from_the_cli_and_resume_after_a_kill(tiny_pipeline, tmp_path, capsys):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    args = ["dagger.rounds=2", *DAGGER]
    assert main(train_args(tiny_pipeline, whole, *args)) == 0

    with pytest.raises(RuntimeError, match="simulated kill"):
        run_train_planner(compose("train/planner", train_args(tiny_pipeline, killed, *args)[2:]), [KillInThirdFit(at_step=3)])
    round_1 = DaggerRoundDir.of(killed, 1)
    assert round_1.record.is_file() and not DaggerRoundDir.of(killed, 2).record.is_file()
    finished = {p: p.stat().st_mtime_ns for p in [round_1.record, *round_1.clips.glob("shard-*")]}
    assert main(train_args(tiny_pipeline, killed, *args)) == 0
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # round 1 was not redone

    rounds, weights, labels = _round_outcome(whole)
    assert [r["round"] for r in rounds] == [0, 1, 2] and [r["beta"] for r in rounds] == [None, 0.5, 0.25]
    assert all(r["windows_added"] > 0 for r in rounds[1:]) and all(0.0 <= r["validation_score"] <= 1.0 for r in rounds)
    assert rounds[2]["train_windows"] == rounds[1]["train_windows"] + rounds[2]["windows_added"]  # original + every round's data
    resumed = _round_outcome(killed)
    assert resumed[0] == rounds
    assert resumed[1].keys() == weights.keys() and all(torch.equal(resumed[1][n], weights[n]) for n in weights)
    assert all(np.array_equal(a, b) for a, b in zip(resumed[2], labels, strict=True))
    assert rounds[1]["settings"]["rollouts"] == [["nominal", 0, 1000]] and rounds[2]["settings"]["rollouts"] == [["nominal", 1, 1000]]
    for r in rounds:  # the checks ran the planner at the precision the round records (its training's, where this CPU runs it natively)
        checked = json.loads((DaggerRoundDir.of(whole, r["round"]).validation / "metrics.json").read_text())["planner_config"]
        assert checked["precision"] == r["planner_precision"] == inference_precision(TrainerSettings.from_mapping(
            compose("train/planner", train_args(tiny_pipeline, whole, *args)[2:]).trainer).resolved_precision, "cpu")

    # Finished rounds are not read back under other round settings.
    capsys.readouterr()
    assert main(train_args(tiny_pipeline, killed, *args, "dagger.beta=0.4")) != 0
    assert "DAgger round 1" in capsys.readouterr().err and {p: p.stat().st_mtime_ns for p in finished} == finished

    # Evaluation seeds never appear in DAgger data.
    for out in (whole, killed):
        for r in (1, 2):
            store = ClipStore(DaggerRoundDir.of(out, r).clips)
            seeds = [store.meta(i)["provenance"]["seed"] for i in range(len(store))]
            assert seeds and not any(is_evaluation_seed(s) for s in seeds)


def test_rounds_of_a_replaced_planner_are_refused_or_removed(tmp_path):
    from foresight.dagger import _stale_rounds

    record = DaggerRoundDir.of(tmp_path, 0).record
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"round": 0, "planner_sha256": "a" * 64}))
    _stale_rounds(tmp_path, "a" * 64, overwrite=False)  # the same planner: its rounds go on
    with pytest.raises(ValueError, match="another trained planner"):
        _stale_rounds(tmp_path, "b" * 64, overwrite=False)
    assert record.is_file()
    _stale_rounds(tmp_path, "b" * 64, overwrite=True)
    assert not (tmp_path / "dagger").exists()
