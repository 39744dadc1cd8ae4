"""A conversion in which nothing converts fails with every item's reason, and a malformed nuScenes
record is a named error (issue #17, items 10 and 11). Inputs are broken copies of the real fixtures
and files written in the real formats, in tmp_path."""

from __future__ import annotations

import json

import pytest

from data.errors import CorruptFileError, NothingConvertedError
from data.store.manifest import Manifest
from foresight.cli import main, run_subcommand
from tests.conftest import shared_data
from tests.data.test_nuscenes import FIXTURE, SCENE, VERSION, _dataroot_copy
from tests.data.test_opendv import write_csv


def test_nuscenes_conversion_with_every_scene_skipped_exits_non_zero_with_the_reasons(tmp_path, capsys):
    root = _dataroot_copy(shared_data(FIXTURE), tmp_path / "root", images=False, maps=False)
    out = tmp_path / "out"
    assert main(["data", "nuscenes", f"dataroot={root}", f"out={out}", "height=36", "width=64"]) == 1
    err = capsys.readouterr().err
    assert "nothing converted" in err and SCENE in err and "CAM_FRONT keyframe images is on disk" in err
    manifest = Manifest.load(out)  # the reasons are kept, and the empty store is not marked complete
    assert manifest.num_clips == 0 and [s["item"] for s in manifest.skipped] == [SCENE] and not manifest.complete
    with pytest.raises(NothingConvertedError) as info:  # a rerun says the same
        run_subcommand("data", "nuscenes", [f"dataroot={root}", f"out={out}", "height=36", "width=64"])
    assert [s["item"] for s in info.value.skipped] == [SCENE]


def test_nuplan_conversion_with_every_log_skipped_exits_non_zero_with_the_reasons(tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a_garbage.db").write_bytes(b"not a database" * 100)
    (logs / "b_garbage.db").write_bytes(b"")
    args = ["data", "nuplan", f"db={logs}", f"sensor_root={tmp_path}", f"out={tmp_path / 'out'}", "height=36", "width=64"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "nothing converted" in err and "a_garbage" in err and "b_garbage" in err


def test_opendv_conversion_with_every_video_skipped_exits_non_zero_with_the_reasons(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "vidBroken.mp4").write_bytes(b"\x00" * 64)
    meta = write_csv(tmp_path / "OpenDV-YouTube.csv", [{"id": "vidGone"}, {"id": "vidBroken"}])
    args = ["data", "opendv", f"videos={videos}", f"metadata={meta}", f"out={tmp_path / 'out'}", "height=36", "width=64"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "nothing converted" in err and "vidGone" in err and "vidBroken.mp4" in err


@pytest.mark.parametrize(
    "field, value, message",
    [("timestamp", None, "timestamp must be an integer"), ("timestamp", 1.5, "timestamp must be an integer"),
     ("translation", [1.0, None, 0.0], "translation must be 3 finite numbers"),
     ("rotation", [1.0, 0.0, 0.0], "rotation must be 4 finite numbers")],
)  # fmt: skip
def test_malformed_ego_pose_record_is_a_named_error(tmp_path, capsys, field, value, message):
    fixture = shared_data(FIXTURE)
    root = _dataroot_copy(fixture, tmp_path / "root", drop_tables={"ego_pose.json"}, maps=False)
    poses = json.loads((fixture / VERSION / "ego_pose.json").read_text())
    poses[7][field] = value
    (root / VERSION / "ego_pose.json").write_text(json.dumps(poses))
    args = [f"dataroot={root}", f"out={tmp_path / 'out'}", "height=36", "width=64", "with_map=false"]
    with pytest.raises(CorruptFileError, match=rf"ego_pose\.json, record '{poses[7]['token']}': {message}"):
        run_subcommand("data", "nuscenes", args)
    assert main(["data", "nuscenes", *args]) == 1  # one line on stderr, not a traceback
    assert "ego_pose.json" in capsys.readouterr().err
