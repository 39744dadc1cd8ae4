import dataclasses

import numpy as np
import pytest

from configs import build, defaults
from data.store import ClipStore, ClipStoreWriter
from planner.datamodule import PlannerWindowDataset, PlannerWindowSpec
from planner.train import TrainSettings, window_repeats
from tests.conftest import turning_clip


def _train(**changes) -> TrainSettings:
    return build(TrainSettings, {**defaults("planner_profile/tiny")["train"], **changes}, "planner.train")


def test_turns_and_suites_repeat_as_configured():
    commands = np.array([2, 0, 1, 2, 2])  # STRAIGHT, RIGHT, LEFT, STRAIGHT, STRAIGHT
    suites = np.array(["nominal", "nominal", "ncap_side", "", "ncap_side"], dtype=object)
    plain = _train(turn_oversample=1, suite_oversample={"nominal": 1})
    none = np.full(len(commands), "", dtype=object)  # no maneuver
    assert window_repeats(commands, suites, none, plain) is None
    both = _train(turn_oversample=2, suite_oversample={"nominal": 3, "ncap_side": 1})
    assert window_repeats(commands, suites, none, both).tolist() == [3, 6, 2, 1, 1]
    with pytest.raises(ValueError, match="suite_oversample"):
        _train(suite_oversample={"nominal": 0})


def test_maneuvers_repeat_as_configured_on_top_of_turns_and_suites():
    commands = np.array([2, 0, 2, 2])
    suites = np.array(["nominal", "nominal", "hazard", ""], dtype=object)
    maneuvers = np.array(["stop_and_go", "right", "lead_brake", ""], dtype=object)
    t = _train(turn_oversample=2, suite_oversample={"nominal": 3}, maneuver_oversample={"stop_and_go": 4, "lead_brake": 2})
    assert window_repeats(commands, suites, maneuvers, t).tolist() == [12, 6, 2, 1]
    assert window_repeats(commands, suites, np.full(4, "", dtype=object), t).tolist() == [3, 6, 1, 1]  # no maneuver named
    with pytest.raises(ValueError, match="maneuver_oversample"):
        _train(maneuver_oversample={"follow": 0})


def test_windows_know_the_suite_and_maneuver_their_clip_was_recorded_in(tmp_path):
    with ClipStoreWriter(tmp_path, "test", {}, codec="png") as writer:
        clip = turning_clip("a", num_frames=6, hw=(8, 8))
        writer.add("a", [dataclasses.replace(clip, provenance={"suite": "hazard", "maneuver": "stop_and_go"})])
        writer.add("b", [turning_clip("b", num_frames=4, hw=(8, 8))])  # no suite (logged driving)
    store = ClipStore(tmp_path)
    windows = PlannerWindowDataset(store, None, PlannerWindowSpec())
    assert windows.suites.tolist() == ["hazard"] * 6 + [""] * 4
    assert windows.maneuvers.tolist() == ["stop_and_go"] * 6 + [""] * 4
