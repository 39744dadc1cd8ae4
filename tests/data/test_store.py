import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from data.errors import CorruptFileError
from data.schema import FrameObjects, MapPatch
from data.store import ClipStore, ClipStoreWriter
from tests.conftest import REPO_ROOT, turning_clip


def _with_extras(clip):
    from dataclasses import replace

    objs = tuple(FrameObjects(np.full((i % 3, 7), i, np.float32), ("car",) * (i % 3), (f"t{i}",) * (i % 3)) for i in range(clip.num_frames))
    patch = MapPatch(np.eye(5, dtype=np.uint8), 0.1, (-1.0, -2.0))
    return replace(clip, objects=objs, map_patch=patch, origin_global=(1.0, 2.0, 3.0, 0.5))


@pytest.mark.parametrize("codec", ["raw", "png", "jpeg"])
def test_round_trip_is_exact_where_it_must_be(tmp_path, codec):
    clip = _with_extras(turning_clip(hw=(24, 40)))
    with ClipStoreWriter(tmp_path, "test", {"a": 1}, codec=codec) as w:
        w.add("item", [clip])
    store = ClipStore(tmp_path, verify=True)
    back = store.load_clip(0)
    if codec == "jpeg":
        assert np.abs(back.frames.astype(int) - clip.frames).mean() < 2.0
    else:
        np.testing.assert_array_equal(back.frames, clip.frames)
    np.testing.assert_array_equal(back.frame_timestamps_us, clip.frame_timestamps_us)
    np.testing.assert_array_equal(back.poses.xyz_m, clip.poses.xyz_m)
    np.testing.assert_array_equal(back.commands, clip.commands)
    assert back.objects[4].categories == ("car",) and back.objects[4].boxes[0, 0] == 4
    np.testing.assert_array_equal(back.map_patch.mask, clip.map_patch.mask)
    assert back.origin_global == clip.origin_global and back.provenance == {"kind": "analytic"}
    np.testing.assert_array_equal(store.load_frames(0, [3, 1])[:, 0, 0, 0], back.frames[[3, 1], 0, 0, 0])
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["num_clips"] == 1 and m["num_frames"] == clip.num_frames and m["complete"]
    assert m["schema_version"] == 1 and m["source"] == "test" and len(m["shards"][0]["sha256"]) == 64


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from data.store import ClipStoreWriter
    from tests.conftest import turning_clip
    out, kill_at = sys.argv[1], int(sys.argv[2])
    w = ClipStoreWriter(out, "test", {"n": 6}, codec="png", clips_per_shard=1)
    for i in range(6):
        if w.is_done(f"item{i}"):
            continue
        if i == kill_at:
            # die in the middle of writing a shard: a temp file is left behind
            open(os.path.join(out, f".shard-0000{i}.safetensors.x.tmp"), "wb").write(b"partial")
            os.kill(os.getpid(), signal.SIGKILL)
        w.add(f"item{i}", [turning_clip(f"clip{i}", num_frames=4 + i, hw=(8, 8))])
    w.close()
    """
)


def _run(out, kill_at):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(out), str(kill_at)], env=env, cwd=REPO_ROOT)


def test_killed_conversion_resumes_with_the_same_result(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    assert _run(killed, kill_at=3).returncode == -9
    partial = ClipStore(killed, verify=True)  # what is there is valid, and says it is incomplete
    assert [r.clip_id for r in partial.refs] == ["clip0", "clip1", "clip2"]
    assert not partial.manifest.complete
    assert _run(killed, kill_at=-1).returncode == 0
    assert _run(clean, kill_at=-1).returncode == 0
    a, b = ClipStore(killed, verify=True), ClipStore(clean, verify=True)
    assert a.manifest.complete and a.manifest.num_frames == b.manifest.num_frames == sum(4 + i for i in range(6))
    assert [r.clip_id for r in a.refs] == [r.clip_id for r in b.refs]
    for i in range(len(a)):
        np.testing.assert_array_equal(a.load_clip(i).frames, b.load_clip(i).frames)
    assert not list(killed.glob("*.tmp")) and not list(killed.glob(".*.tmp"))


def test_resume_refuses_a_different_config_and_overwrite_starts_over(tmp_path):
    with ClipStoreWriter(tmp_path, "test", {"size": 1}) as w:
        w.add("a", [turning_clip(hw=(8, 8))])
    with pytest.raises(ValueError, match="different configuration"):
        ClipStoreWriter(tmp_path, "test", {"size": 2})
    with ClipStoreWriter(tmp_path, "test", {"size": 2}, overwrite=True) as w:
        assert not w.is_done("a")
        w.add("b", [turning_clip(hw=(8, 8))])
    assert ClipStore(tmp_path).manifest.done_items == {"b"}


def test_skips_are_recorded_and_a_tampered_shard_fails_verification(tmp_path):
    with ClipStoreWriter(tmp_path, "test", {}) as w:
        w.add("good", [turning_clip(hw=(8, 8))], bad_files=[{"item": "good", "file": "x.jpg", "reason": "corrupt"}])
        w.skip("bad", "missing table ego_pose in bad.db")
    m = ClipStore(tmp_path).manifest
    assert m.skipped == [{"item": "bad", "reason": "missing table ego_pose in bad.db"}]
    assert m.skipped_files[0]["file"] == "x.jpg" and m.done_items == {"good", "bad"}
    shard = tmp_path / m.shards[0].file
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="checksum"):
        ClipStore(tmp_path, verify=True)


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        ClipStore(tmp_path / "nope")


def _convert(out, items):
    from data.convert import ShardFormat, convert_items
    from data.ranks import DistEnv

    return convert_items(out, "test", {}, items, ShardFormat("jpeg", 95, 1), description="test", env=DistEnv()).manifest


def test_an_item_that_fails_midway_leaves_no_clips_behind(tmp_path):
    from data.convert import SourceItem
    from data.errors import CorruptFileError

    def half_then_fail(report):
        yield turning_clip("a0", hw=(8, 8))
        raise CorruptFileError("video a.mp4 broke")

    items = [SourceItem("a", half_then_fail), SourceItem("b", lambda report: [turning_clip("b0", hw=(8, 8))])]
    m = _convert(tmp_path, items)
    assert [s["item"] for s in m.skipped] == ["a"]
    assert [s.clip_ids for s in m.shards] == [["b0"]] and [s.items for s in m.shards] == [["b"]]
    assert ClipStore(tmp_path).load_clip(0).clip_id == "b0"
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == [m.shards[0].file]  # no shard of "a" left


def test_missing_file_skips_are_retried_on_the_next_run(tmp_path):
    from data.convert import SourceItem
    from data.errors import MissingFileError

    def missing(report):
        raise MissingFileError("video v1.mp4 not downloaded yet")

    m = _convert(tmp_path, [SourceItem("v1", missing)])
    assert m.skipped[0]["retry"] and "v1" not in m.done_items and not m.complete
    m = _convert(tmp_path, [SourceItem("v1", lambda r: [turning_clip(hw=(8, 8))])])
    assert m.skipped == [] and m.num_clips == 1 and m.complete
