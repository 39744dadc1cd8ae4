import json

import numpy as np
import pytest

from data.command import Command
from data.dataset import ClipWindowDataset, WindowSpec
from data.store import ClipStore
from foresight.cli import main, run_subcommand
from sim_eval.scenarios.suites import suite_size
from sim_eval.synth import Perturbation, SynthEpisode, record_episode, synth_episodes

DT_S = 0.1  # the runner's physics step
PLAIN = Perturbation(probability=0.0, max_offset_m=1.0, duration_s=1.0, max_speed_frac=0.0)


def perturbed(**changes) -> Perturbation:
    return Perturbation(**{**PLAIN.__dict__, **changes})


def test_synth_episodes_cycle_suites_and_seeds():
    eps = synth_episodes(["smoke", "ncap_side"], 13, 7)
    assert eps[0] == SynthEpisode("smoke", 0, 7) and eps[1] == SynthEpisode("ncap_side", 0, 7)
    assert eps[6] == SynthEpisode("smoke", 0, 8)  # 6 scenarios per cycle, then the next seed


def test_interleaved_episodes_reach_every_suite_early():
    sizes = {s: suite_size(s) for s in ("smoke", "nominal", "ncap_side")}
    eps = synth_episodes(list(sizes), 2 * sum(sizes.values()), 7, interleave=True)
    assert [e.suite for e in eps[:3]] == ["smoke", "nominal", "ncap_side"] and eps[1].index == 0
    cycle = eps[:sum(sizes.values())]
    assert sorted((e.suite, e.index) for e in cycle) == sorted((s, i) for s, n in sizes.items() for i in range(n))
    assert {e.seed for e in cycle} == {7} and {e.seed for e in eps[len(cycle):]} == {8}
    plain = synth_episodes(list(sizes), len(cycle), 7)
    assert sorted(map(str, plain)) == sorted(map(str, cycle)) and plain != cycle  # same scenarios, other order


def test_recorded_clip_is_a_real_log_in_the_unified_schema():
    clip = record_episode(SynthEpisode("nominal", 5, 3), 32, 64, 2.0, False, DT_S, PLAIN)  # a right turn
    assert clip.frames.shape[1:] == (32, 64, 3) and clip.num_frames >= 10
    np.testing.assert_allclose(np.diff(clip.frame_timestamps_us), 500_000)
    assert clip.frames.std() > 10 and not np.array_equal(clip.frames[0], clip.frames[-1])
    assert Command.RIGHT in clip.commands.tolist()
    assert clip.intrinsics.width == 64 and len(clip.objects) == clip.num_frames
    speeds = clip.frame_speed_mps()
    assert speeds.max() > 3.0 and speeds.max() < 20.0
    again = record_episode(SynthEpisode("nominal", 5, 3), 32, 64, 2.0, False, DT_S, PLAIN)
    np.testing.assert_array_equal(again.frames, clip.frames)  # deterministic per (suite, index, seed)


def test_data_synth_cli_writes_a_trainable_store(tmp_path):
    out = tmp_path / "synth"
    assert main(["data", "synth", f"out={out}", "episodes=2", "suites=[smoke]", "height=32", "width=64", "workers=1"]) == 0
    store = ClipStore(out, verify=True)
    assert len(store) == 2 and store.manifest.source == "synth" and store.manifest.codec == "png"
    ds = ClipWindowDataset(store, WindowSpec(n_frames=4, fps=2.0))
    item = ds[0]
    assert bool(item["has_poses"]) and item["trajectory"][-1, 0] > 5.0  # drives forward


def test_bench_sim_prints_the_required_keys(capsys):
    result = run_subcommand("bench", "sim", ["height=36", "width=64", "render_frames=5", "sim_steps=20", "highway_env_steps=5"])
    printed = json.loads(capsys.readouterr().out)
    for key in ("render_fps", "sim_steps_per_s", "sim_render_steps_per_s", "highway_env_steps_per_s", "ratio_vs_highway_env"):
        assert key in printed
    assert result["render_fps"] > 0 and result["sim_steps_per_s"] > result["sim_render_steps_per_s"] > 0
    if result["highway_env_steps_per_s"] is None:
        assert "highway-env" in result["highway_env_note"]
    else:
        assert result["ratio_vs_highway_env"] > 0


def test_parallel_recording_writes_the_same_store(tmp_path):
    args = ["data", "synth", "episodes=3", "suites=[smoke, ncap_side]", "height=32", "width=64", "fps=5"]
    assert main([*args, f"out={tmp_path / 'one'}", "workers=1"]) == 0
    assert main([*args, f"out={tmp_path / 'two'}", "workers=2"]) == 0
    assert main([*args, f"out={tmp_path / 'two'}", "workers=1"]) == 0  # the worker count is not part of the store's config
    one, two = ClipStore(tmp_path / "one"), ClipStore(tmp_path / "two")
    assert len(one) == len(two) == 3
    for a, b in zip(one, two):
        assert a.clip_id == b.clip_id
        np.testing.assert_array_equal(a.frames, b.frames)


def test_perturbed_expert_leaves_the_lane_centre_and_recovers():
    ep = SynthEpisode("nominal", 0, 3)  # a straight road
    plain = record_episode(ep, 32, 64, 5.0, False, DT_S, PLAIN)
    shaken = record_episode(ep, 32, 64, 5.0, False, DT_S, perturbed(probability=0.3))
    again = record_episode(ep, 32, 64, 5.0, False, DT_S, perturbed(probability=0.3))
    np.testing.assert_array_equal(shaken.frames, again.frames)  # seeded per episode
    t = plain.frame_timestamps_us
    # Both start at the same pose on a straight road along x: y is the lateral deviation.
    lateral = np.abs(shaken.poses.pose_at(t)[:, 1] - plain.poses.pose_at(t)[:, 1])
    assert lateral.max() > 0.3  # it did leave the path the expert drives
    assert lateral[-5:].max() < lateral.max()  # ... and came back towards it
    assert shaken.provenance["perturbation"]["probability"] == 0.3 and plain.provenance["perturbation"] is None
    # The perturbed intervals are listed in clip time (for the planner dataset to skip): 1 s each,
    # inside the clip; the ego first leaves the unperturbed path in the first of them.
    intervals = np.asarray(shaken.provenance["perturbed_intervals_us"])
    assert len(intervals) >= 1 and plain.provenance["perturbed_intervals_us"] == []
    np.testing.assert_array_equal(intervals[:, 1] - intervals[:, 0], 1_000_000)
    assert intervals.min() >= t[0] and intervals[:, 0].max() <= t[-1]
    first_departure = t[np.argmax(lateral > 0.01)]
    assert intervals[0, 0] <= first_departure <= intervals[0, 1]


def test_retime_along_path_keeps_the_path_and_scales_arc_length():
    from sim_eval.synth import retime_along_path

    waypoints = np.array([[5.0, 0.0], [10.0, 0.0], [13.0, 4.0], [13.0, 9.0]])  # straight, then a 90 degree bend
    np.testing.assert_allclose(retime_along_path(waypoints, 1.0), waypoints)
    slow = retime_along_path(waypoints, 0.5)  # arc lengths 2.5, 5, 7.5, 10: all on the straight part
    np.testing.assert_allclose(slow, [[2.5, 0.0], [5.0, 0.0], [7.5, 0.0], [10.0, 0.0]])
    fast = retime_along_path(waypoints, 1.2)  # arc lengths 6, 12, 18, 24 of 20: the last runs on past the end
    np.testing.assert_allclose(fast[0], [6.0, 0.0])
    np.testing.assert_allclose(fast[1], [10.0 + 0.6 * 2.0, 0.8 * 2.0])  # 2 m into the 5 m diagonal
    np.testing.assert_allclose(fast[3], [13.0, 13.0])  # 4 m beyond the end along the last segment (+y)


def test_speed_perturbation_changes_speed_not_lane_and_is_listed():
    ep = SynthEpisode("nominal", 0, 3)  # a straight road
    plain = record_episode(ep, 32, 64, 5.0, False, DT_S, PLAIN)
    shaken = record_episode(ep, 32, 64, 5.0, False, DT_S, perturbed(probability=0.3, max_offset_m=0.0, max_speed_frac=0.4))
    t = plain.frame_timestamps_us
    speed_gap = np.abs(shaken.poses.speed_at(t) - plain.poses.speed_at(t))
    along = np.abs(shaken.poses.pose_at(t)[:, 0] - plain.poses.pose_at(t)[:, 0])
    lateral = np.abs(shaken.poses.pose_at(t)[:, 1] - plain.poses.pose_at(t)[:, 1])
    assert along.max() > 1.0  # it drove ahead of / behind the plain expert
    assert lateral.max() < 0.05  # ... in the same lane position
    assert speed_gap.max() > 0.5
    assert len(shaken.provenance["perturbed_intervals_us"]) >= 1
    assert shaken.provenance["perturbation"]["max_speed_frac"] == 0.4
    with pytest.raises(ValueError, match="max_speed_frac"):
        perturbed(max_speed_frac=1.0)
