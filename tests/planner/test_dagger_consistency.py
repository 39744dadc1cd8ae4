"""DAgger windows agree with the expert's own training windows (issue #14).

With beta = 1 the expert executes every plan of a DAgger rollout, so the rollout must record what
`foresight data synth` records for the same training scenario (unperturbed, no randomisation): the
same camera frames at the same times, the same ego poses, commands and camera, hence the same ego
status in every window, and nearly the same route ahead (the scenario's for DAgger, the path the
expert drove for synth). The one intended difference is the target: the expert's plan from the
visited state (DAgger) instead of the future the expert then drove (synth). The two differ only by
how the tracker executes a plan and by replanning, a few decimetres on average; a label in another
reference point of the car (centre instead of rear axle: 1.5 m), from the state a physics step later
but in the frame of the frame's time (1 m) or with a flipped yaw (0.05-0.28 rad) fails it.
"""

from __future__ import annotations

import numpy as np

from data.store.reader import ClipStore
from foresight.cli import run_subcommand
from foresight.dagger import rollout_runner
from foresight.dagger_rollout import RolloutSettings, record_round, weights_sha256
from planner.batch import PlannerBatch
from planner.datamodule import PlannerWindowDataset, PlannerWindowSpec
from planner.vam import VAMPlanner
from sim_eval.synth import SynthEpisode, synth_episodes

# A straight episode, a left turn and a lead vehicle braking: training seeds (sim_eval/seeds.py).
EPISODES = [SynthEpisode("nominal", 0, 1000), SynthEpisode("nominal", 4, 1000), SynthEpisode("hazard", 0, 1000)]

# Tolerances [m, rad] between the expert's plan and its driven future, measured on these episodes at
# 2 fps: first waypoint mean 0.07 m, per-waypoint medians <= 0.43 m, mean signed bias <= 0.15 m, mean
# yaw difference <= 0.007 rad.
FIRST_WAYPOINT_MEAN_M = 0.25
WAYPOINT_MEDIAN_M = 1.0
SIGNED_BIAS_M = 0.5
YAW_MEAN_RAD = 0.03
# The route at 10-50 m ahead, scenario route (DAgger) against the expert's driven path (synth):
# mean 0.05-0.09 m, at most 0.6 m (where the driven path cuts a turn's corner).
ROUTE_MEAN_M = 0.3
ROUTE_MAX_M = 1.5


def _synth_stores(root, episodes: list[SynthEpisode], height: int, width: int, fps: float) -> dict[str, ClipStore]:
    """suite -> the store `foresight data synth` (the plain expert) writes for its episodes 0..max
    index of `episodes` (all with one seed)."""
    stores = {}
    for suite in dict.fromkeys(ep.suite for ep in episodes):
        count = max(ep.index for ep in episodes if ep.suite == suite) + 1
        assert all(e in synth_episodes([suite], count, episodes[0].seed) for e in episodes if e.suite == suite)
        run_subcommand("data", "synth", [f"out={root / suite}", f"episodes={count}", f"seed={episodes[0].seed}", f"suites=[{suite}]",
                                         f"height={height}", f"width={width}", f"fps={fps}", "workers=1", "perturb.probability=0.0",
                                         "randomize=false"])
        stores[suite] = ClipStore(root / suite)
    return stores


def _by_clip_id(store: ClipStore) -> dict[str, int]:
    return {store.refs[i].clip_id: i for i in range(len(store))}


def _windows(ds: PlannerWindowDataset) -> dict[tuple[str, int], PlannerBatch]:
    """(clip id, current frame) -> the window (labels only)."""
    windows = (ds[i] for i in range(len(ds)))
    return {(ds.clips.refs[int(w.clip_index)].clip_id, int(w.frame_index)): w for w in windows}


def test_expert_driven_dagger_windows_are_the_synth_windows(trained_planner, tmp_path):
    vam = trained_planner / "vam"
    runner = rollout_runner(vam)
    settings = RolloutSettings(str(vam), weights_sha256(vam), 1, 1.0, runner)
    record_round(tmp_path / "dagger", EPISODES, settings)
    dagger = ClipStore(tmp_path / "dagger")
    planner = VAMPlanner.from_checkpoint(vam)
    height, width = planner.camera_hw
    synth = _synth_stores(tmp_path, EPISODES, height, width, settings.fps)

    command_boundaries: dict[str, set[int]] = {}  # frames next to a change of the synth command
    for j in range(len(dagger)):
        meta = dagger.meta(j)
        ep = meta["provenance"]
        assert ep["planner_plans"] == 0 and ep["expert_plans"] > 0  # beta = 1: the expert drove every plan
        store = synth[ep["suite"]]
        i = _by_clip_id(store)[f"synth-{ep['suite']}-{ep['index']:03d}-s{ep['seed']}"]
        synth_meta = store.meta(i)
        assert meta["fps"] == synth_meta["fps"] and meta["intrinsics"] == synth_meta["intrinsics"]
        assert meta["origin_global"] == synth_meta["origin_global"]
        times = dagger.frame_timestamps_us(j)
        np.testing.assert_array_equal(times, store.frame_timestamps_us(i))  # same frame rate and phase
        np.testing.assert_array_equal(dagger.load_frames(j), store.load_frames(i))  # same camera, same pixels
        np.testing.assert_allclose(dagger.pose_stream(j).pose_at(times), store.pose_stream(i).pose_at(times), atol=1e-6)
        # Commands: the route's (DAgger, closed loop) and the driven path's (synth) agree but for
        # a frame at the start or end of a turn, where the driven path cuts the route's corner.
        ours, theirs = dagger.commands(j), store.commands(i)
        changes = np.flatnonzero(np.diff(theirs.astype(int)))
        near_change = np.zeros(len(theirs), bool)
        for c in changes:
            near_change[max(c - 1, 0):c + 3] = True
        assert not np.any((ours != theirs) & ~near_change), (ours, theirs)
        command_boundaries[dagger.refs[j].clip_id] = set(np.flatnonzero(near_change).tolist())

    spec = PlannerWindowSpec(n_observed_frames=2, frame_period_s=1.0 / settings.fps, num_waypoints=planner.num_waypoints,
                             waypoint_dt_s=planner.plan_dt_s, route_path=True)
    labelled = _windows(PlannerWindowDataset(dagger, None, spec, expert_labels=True))
    driven = {}  # the synth windows of the same episodes, keyed like their DAgger twins
    for store in synth.values():
        for (clip_id, frame), value in _windows(PlannerWindowDataset(store, None, spec)).items():
            driven[(clip_id.replace("synth-", "dagger-r01-", 1), frame)] = value
    driven = {key: value for key, value in driven.items() if key[0] in _by_clip_id(dagger)}
    common = sorted(set(labelled) & set(driven))
    assert len(common) == len(driven) > 40  # every synth window has its DAgger twin

    errors, signed, yaw, route_apart = [], [], [], []
    for key in common:
        a, b = labelled[key], driven[key]
        for field in ("command", "speed_mps", "accel_mps2", "yaw_rate_rps", "past_poses", "n_padded"):
            if field != "command" or key[1] not in command_boundaries.get(key[0], ()):
                np.testing.assert_array_equal(getattr(a, field).numpy(), getattr(b, field).numpy(), err_msg=f"{field} at {key}")
        assert bool(a.trajectory_valid.all())
        if bool(b.trajectory_valid.all()):  # the synth clip logged the whole horizon
            d = (a.trajectory - b.trajectory).numpy()  # (K, 3)
            errors.append(np.linalg.norm(d[:, :2], axis=1))
            signed.append(d[:, :2])
            yaw.append(np.abs(np.angle(np.exp(1j * d[:, 2]))))
        # The route: the scenario's (DAgger, closed loop) against the path the expert drove (synth),
        # at the distances the planner reads (10-50 m).
        route_apart.append(np.linalg.norm((a.route_path - b.route_path).numpy()[10:51:10], axis=1))
    errors_m, signed_m, yaw_rad = np.array(errors), np.array(signed), np.array(yaw)  # (N, K), (N, K, 2), (N, K)
    assert errors_m.mean(axis=0)[0] < FIRST_WAYPOINT_MEAN_M, errors_m.mean(axis=0)
    assert np.all(np.median(errors_m, axis=0) < WAYPOINT_MEDIAN_M), np.median(errors_m, axis=0)
    assert np.all(np.abs(signed_m.mean(axis=0)) < SIGNED_BIAS_M), signed_m.mean(axis=0)
    assert np.all(yaw_rad.mean(axis=0) < YAW_MEAN_RAD), yaw_rad.mean(axis=0)
    route_apart_m = np.array(route_apart)  # (N, 5)
    assert np.all(route_apart_m.mean(axis=0) < ROUTE_MEAN_M), route_apart_m.mean(axis=0)
    assert route_apart_m.max() < ROUTE_MAX_M, route_apart_m.max(axis=0)

