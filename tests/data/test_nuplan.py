"""nuPlan adapter: the real scene-0916 log in nuPlan's schema, and small logs written here with sqlite3."""

from __future__ import annotations

import os
import pickle
import sqlite3
from dataclasses import MISSING, fields
from pathlib import Path

import cv2
import numpy as np
import pytest

from configs import compose
from data.command import Command
from data.errors import DataError, EmptySourceError, MissingTableError, NothingConvertedError
from data.restricted_unpickle import UnsafePickleError, restricted_loads
from data.sources.nuplan import NuplanSettings, load_log
from data.sources.nuplan_schema import TABLE_DDL, create_tables
from data.store.reader import ClipStore
from foresight.cli import main, run_subcommand
from tests.conftest import shared_data

FIXTURE_LOG = "n015-2018-10-08-15-36-50+0800"
SMALL = ["height=72", "width=128"]


def _convert(db: Path, sensor_root: Path, out: Path, *extra: str):
    return run_subcommand("data", "nuplan", [f"db={db}", f"sensor_root={sensor_root}", f"out={out}", *SMALL, *extra])


# -- restricted unpickling ----------------------------------------------------------------------


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_restricted_loads_accepts_plain_data_only(tmp_path):
    value = [[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]]
    for protocol in (0, 2, 4, 5):
        assert restricted_loads(pickle.dumps(value, protocol=protocol), "K") == value
    assert restricted_loads(pickle.dumps({"a": (1, 2.5, None, True, "s")}), "d") == {"a": (1, 2.5, None, True, "s")}

    marker = tmp_path / "pwned"
    with pytest.raises(UnsafePickleError, match=r"camera\.intrinsic.*(posix|nt)\.system"):
        restricted_loads(pickle.dumps(_RunsShell(f"touch {marker}")), "camera.intrinsic")
    assert not marker.exists()
    with pytest.raises(UnsafePickleError, match="numpy"):  # no class at all, numpy arrays included
        restricted_loads(pickle.dumps(np.eye(3)), "K")
    with pytest.raises(UnsafePickleError, match="bytes"):
        restricted_loads(pickle.dumps([b"raw"]), "K")
    with pytest.raises(UnsafePickleError, match="set"):
        restricted_loads(pickle.dumps({1.0, 2.0}), "K")
    with pytest.raises(DataError, match="not a readable pickle"):
        restricted_loads(b"\x80\x04garbage", "K")


# -- the real log (nuScenes scene-0916 in the nuPlan schema) ------------------------------------


@pytest.fixture(scope="module")
def fixture_store(tmp_path_factory):
    root = shared_data("nuplan-scene-0916")
    out = tmp_path_factory.mktemp("nuplan_real")
    manifest = _convert(root / f"{FIXTURE_LOG}.db", root / "sensor_blobs", out)
    return root, manifest, ClipStore(out)


def _nearest_rows(conn: sqlite3.Connection, sql: str, times_us: np.ndarray) -> np.ndarray:
    rows = np.array(conn.execute(sql).fetchall(), dtype=np.float64)
    idx = np.abs(rows[:, 0][None, :] - times_us[:, None].astype(np.float64)).argmin(axis=1)
    return rows[idx]


def test_real_log_converts_to_one_41_frame_clip(fixture_store):
    root, manifest, store = fixture_store
    assert (manifest.num_clips, manifest.num_frames, manifest.skipped, manifest.skipped_files) == (1, 41, [], [])
    clip = store.load_clip(0)
    assert clip.frames.shape == (41, 72, 128, 3) and clip.source == "nuplan"
    with sqlite3.connect(root / f"{FIXTURE_LOG}.db") as conn:
        image_ts = [r[0] for r in conn.execute("SELECT timestamp FROM image ORDER BY timestamp")]
        tokens = [r[0].hex() for r in conn.execute("SELECT token FROM image ORDER BY timestamp")]
    np.testing.assert_array_equal(clip.frame_timestamps_us, image_ts)
    prov = clip.provenance
    assert prov["image_tokens"] == tokens
    assert prov["log_name"] == FIXTURE_LOG and prov["db_file"] == f"{FIXTURE_LOG}.db"
    assert (prov["vehicle"], prov["location"], prov["map_version"]) == ("n015", "sg-one-north", "nuplan-maps-v1.0")
    assert prov["camera_channel"] == "CAM_F0" and prov["scenes"] == ["scene-0916"] and prov["scenario_tags"] == {}
    assert clip.license == "nuPlan dataset license (non-commercial)"


def test_real_log_speeds_match_db_velocities(fixture_store):
    root, _, store = fixture_store
    clip = store.load_clip(0)
    with sqlite3.connect(root / f"{FIXTURE_LOG}.db") as conn:
        vel = _nearest_rows(conn, "SELECT timestamp, vx, vy FROM ego_pose", clip.frame_timestamps_us)
    db_speed = np.hypot(vel[:, 1], vel[:, 2])
    speed = clip.frame_speed_mps()
    assert np.abs(speed - db_speed).max() < 0.5, np.c_[speed, db_speed]
    assert 3.0 < speed.mean() < 6.0


def test_real_log_turns_right_and_keeps_the_global_origin(fixture_store):
    root, _, store = fixture_store
    clip = store.load_clip(0)
    poses = clip.frame_poses()
    assert np.degrees(poses[-1, 3] - poses[0, 3]) == pytest.approx(-86.0, abs=3.0)
    assert Command.RIGHT in clip.commands
    with sqlite3.connect(root / f"{FIXTURE_LOG}.db") as conn:
        first = _nearest_rows(conn, "SELECT timestamp, x, y, z FROM ego_pose", clip.frame_timestamps_us[:1])[0]
    global_xy = np.asarray(clip.origin_global[:2]) + poses[0, :2]
    np.testing.assert_allclose(global_xy, first[1:3], atol=0.05)


def test_real_log_intrinsics_come_from_the_pickled_blob(fixture_store):
    root, _, store = fixture_store
    with sqlite3.connect(root / f"{FIXTURE_LOG}.db") as conn:
        blob, w, h = conn.execute("SELECT intrinsic, width, height FROM camera WHERE channel = 'CAM_F0'").fetchone()
    k = np.asarray(restricted_loads(blob, "camera.intrinsic"))
    intr = store.load_clip(0).intrinsics
    sx, sy = 128 / w, 72 / h
    assert (w, h) == (1600, 900)
    np.testing.assert_allclose([intr.fx, intr.fy], [k[0, 0] * sx, k[1, 1] * sy])
    np.testing.assert_allclose([intr.cx, intr.cy], [(k[0, 2] + 0.5) * sx - 0.5, (k[1, 2] + 0.5) * sy - 0.5])
    assert (intr.width, intr.height) == (128, 72)


def test_real_log_boxes_come_from_the_labelled_sweep_of_each_frame(fixture_store):
    root, _, store = fixture_store
    clip = store.load_clip(0)
    assert all(len(o) > 0 for o in clip.objects)
    used = clip.provenance["object_lidar_pc_tokens"]
    assert len(set(used)) == 41  # each frame has its own keyframe sweep
    with sqlite3.connect(root / f"{FIXTURE_LOG}.db") as conn:
        assert sum(len(o) for o in clip.objects) == conn.execute("SELECT count(*) FROM lidar_box").fetchone()[0]
        pc_ts = dict(conn.execute("SELECT lower(hex(token)), timestamp FROM lidar_pc"))
        rows = conn.execute(
            "SELECT lower(hex(b.track_token)), b.x, b.y, b.length, b.width, c.name FROM lidar_box b "
            "JOIN track t ON t.token = b.track_token JOIN category c ON c.token = t.category_token "
            "WHERE lower(hex(b.lidar_pc_token)) = ?",
            (used[10],),
        ).fetchall()
    assert max(abs(pc_ts[u] - t) for u, t in zip(used, clip.frame_timestamps_us)) <= 100_000
    objs = clip.objects[10]
    by_track = {r[0]: r for r in rows}
    assert set(objs.track_ids) == set(by_track)
    i = 0
    track, x, y, length, width, category = by_track[objs.track_ids[i]]
    ox, oy = clip.origin_global[:2]
    np.testing.assert_allclose(objs.boxes[i, [0, 1, 3, 4]], [x - ox, y - oy, length, width], atol=1e-3)
    assert objs.categories[i] == category
    assert set(c for o in clip.objects for c in o.categories) <= {
        "vehicle", "bicycle", "pedestrian", "traffic_cone", "barrier", "czone_sign", "generic_object"
    }


def test_settings_come_from_the_yaml():
    assert all(f.default is MISSING for f in fields(NuplanSettings))  # configs/data/nuplan.yaml holds them
    assert NuplanSettings.default(camera="CAM_B0") == NuplanSettings.from_cfg(compose("data/nuplan", ["camera=CAM_B0"]))
    with pytest.raises(TypeError, match="fsp"):
        NuplanSettings.default(fsp=10.0)


def test_camera_slower_than_fps_is_refused(tmp_path):
    root = shared_data("nuplan-scene-0916")
    settings = NuplanSettings.default(fps=10.0, height=72, width=128)
    with pytest.raises(DataError, match=r"n015-.*CAM_F0 runs at 2\.00 Hz"):
        load_log(root / f"{FIXTURE_LOG}.db", root / "sensor_blobs", settings, lambda p, r: None)


# -- logs written here in the nuPlan schema ----------------------------------------------------

T0_US = 1_600_000_000_000_000
X0, Y0, YAW0 = 664_000.0, 3_997_000.0, 0.5
SPEED = 8.0
IMG_W, IMG_H = 192, 108
K_NATIVE = [[200.0, 0.0, 96.0], [0.0, 200.0, 54.0], [0.0, 0.0, 1.0]]


def write_straight_log(
    db_path: Path,
    sensor_root: Path,
    *,
    n_images: int = 56,
    omit_tables: tuple[str, ...] = (),
    intrinsic_blob: bytes | None = None,
    seed: int = 0,
) -> list[Path]:
    """A 10 Hz CAM_F0 log (56 images = 5.5 s: exactly 12 frames at 2 Hz) of a straight drive at SPEED m/s heading YAW0, with 20 Hz ego poses and
    lidar sweeps (one parked car 30 m ahead of the start); image i is a flat grey of value 4 * i.
    Returns the image paths in time order."""
    rng = np.random.default_rng(seed)
    tok = lambda: rng.bytes(8)  # noqa: E731
    name = db_path.stem
    conn = sqlite3.connect(db_path)
    create_tables(conn, tuple(t for t in TABLE_DDL if t not in omit_tables))
    log_token, cam_token, lidar_token, scene_token = tok(), tok(), tok(), tok()
    ins = lambda table, row: conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", row)  # noqa: E731
    ins("log", (log_token, "veh-7", "2021-06-01", T0_US, name, "us-nv-las-vegas-strip", "nuplan-maps-v1.0"))
    intrinsic = pickle.dumps(K_NATIVE) if intrinsic_blob is None else intrinsic_blob
    ins("camera", (cam_token, log_token, "CAM_F0", "synthetic", pickle.dumps([1.6, 0.0, 1.5]),
                   pickle.dumps([0.5, -0.5, 0.5, -0.5]), intrinsic, pickle.dumps([0.0] * 5), IMG_W, IMG_H))
    ins("lidar", (lidar_token, log_token, "MergedPointCloud", "synthetic", None, None, 0))
    ins("scene", (scene_token, log_token, "scene-straight", None, ""))
    c, s = np.cos(YAW0), np.sin(YAW0)
    if "ego_pose" not in omit_tables:
        qw, qz = np.cos(YAW0 / 2), np.sin(YAW0 / 2)
        for t_us in range(T0_US - 1_000_000, T0_US + n_images * 100_000 + 1_000_000, 50_000):
            d = SPEED * (t_us - T0_US) * 1e-6
            ins("ego_pose", (tok(), t_us, X0 + c * d, Y0 + s * d, 12.0, qw, 0.0, 0.0, qz, SPEED, 0.0, 0.0,
                             0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 32611, log_token))
    cat, track = tok(), tok()
    ins("category", (cat, "vehicle", "cars"))
    ins("track", (track, cat, 1.9, 4.6, 1.6))
    for t_us in range(T0_US - 500_000, T0_US + n_images * 100_000 + 500_000, 50_000):
        pc = tok()
        ins("lidar_pc", (pc, None, None, scene_token, tok(), lidar_token, f"{name}/MergedPointCloud/x.pcd", t_us))
        ins("lidar_box", (tok(), pc, track, None, None, X0 + 30 * c, Y0 + 30 * s, 12.8, 1.9, 4.6, 1.6,
                          0.0, 0.0, 0.0, YAW0, 1.0))
    folder = sensor_root / name / "CAM_F0"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_images):
        token = tok()
        rel = f"{name}/CAM_F0/{token.hex()}.jpg"
        t_us = T0_US + i * 100_000 + int(rng.integers(-3000, 3001))
        ins("image", (token, None, None, tok(), cam_token, rel, t_us))
        img = np.full((IMG_H, IMG_W, 3), 4 * i, np.uint8)
        ok, buf = cv2.imencode(".jpg", img)
        assert ok
        (sensor_root / rel).write_bytes(buf.tobytes())
        paths.append(sensor_root / rel)
    conn.commit()
    conn.close()
    return paths


def test_10hz_log_is_resampled_to_2hz(tmp_path):
    sensor_root = tmp_path / "sensor_blobs"
    write_straight_log(tmp_path / "straight.db", sensor_root)
    manifest = _convert(tmp_path / "straight.db", sensor_root, tmp_path / "out")
    assert (manifest.num_clips, manifest.num_frames, manifest.skipped_files) == (1, 12, [])
    clip = ClipStore(tmp_path / "out").load_clip(0)
    dt = np.diff(clip.frame_timestamps_us)
    assert np.all(np.abs(dt - 500_000) <= 6000), dt
    # Every fifth 10 Hz image is kept (image i is grey 4 * i).
    np.testing.assert_allclose(clip.frames.reshape(12, -1).mean(axis=1), 20 * np.arange(12), atol=2)
    np.testing.assert_allclose(clip.frame_speed_mps(), SPEED, atol=0.1)
    assert np.all(clip.commands == Command.STRAIGHT)
    poses = clip.frame_poses()
    np.testing.assert_allclose(poses[:, 3], YAW0, atol=1e-6)
    np.testing.assert_allclose(clip.origin_global, (X0 - 8 * np.cos(YAW0), Y0 - 8 * np.sin(YAW0), 12.0, YAW0), atol=1e-6)
    i = clip.intrinsics
    np.testing.assert_allclose([i.fx, i.fy, i.cx, i.cy], [400 / 3, 400 / 3, 63 + 5 / 6, 35 + 5 / 6])
    # The parked car: 30 m ahead of the start, i.e. 38 m along the heading from the origin pose.
    boxes = np.stack([o.boxes[0] for o in clip.objects])
    np.testing.assert_allclose(boxes, np.tile([38 * np.cos(YAW0), 38 * np.sin(YAW0), 0.8, 4.6, 1.9, 1.6, YAW0], (12, 1)),
                               atol=1e-3)
    assert clip.objects[0].categories == ("vehicle",)
    assert clip.provenance["vehicle"] == "veh-7" and clip.provenance["source_camera_hz"] == pytest.approx(10, abs=0.2)


def test_missing_and_corrupt_images_are_reported_and_the_rest_converts(tmp_path):
    sensor_root = tmp_path / "sensor_blobs"
    paths = write_straight_log(tmp_path / "gappy.db", sensor_root)
    paths[10].unlink()  # selected frame 2
    paths[25].write_bytes(paths[25].read_bytes()[:200])  # selected frame 5, truncated
    manifest = _convert(tmp_path / "gappy.db", sensor_root, tmp_path / "out")
    bad = {Path(f["file"]).name: f["reason"] for f in manifest.skipped_files}
    assert set(bad) == {paths[10].name, paths[25].name}
    assert "not found" in bad[paths[10].name] and "corrupt" in bad[paths[25].name]
    assert manifest.skipped == [] and manifest.complete
    # At 10 Hz a bad selected image is replaced by its neighbour 0.1 s away: one clip, no hole.
    assert manifest.num_frames == 12 and manifest.num_clips == 1
    ts = ClipStore(tmp_path / "out").frame_timestamps_us(0)
    assert np.abs(np.diff(ts) - 500_000).max() <= 110_000


def test_missing_table_skips_that_log_and_the_folder_converts(tmp_path):
    sensor_root, logs = tmp_path / "sensor_blobs", tmp_path / "logs"
    logs.mkdir()
    write_straight_log(logs / "a_no_poses.db", sensor_root, omit_tables=("ego_pose",), n_images=12)
    write_straight_log(logs / "b_good.db", sensor_root, n_images=12)
    (logs / "c_garbage.db").write_bytes(b"not a database" * 100)
    assert main(["data", "nuplan", f"db={logs}", f"sensor_root={sensor_root}", f"out={tmp_path / 'out'}", *SMALL]) == 0
    store = ClipStore(tmp_path / "out")
    assert len(store) == 1 and store.meta(0)["clip_id"] == "b_good_000"
    reasons = {s["item"]: s["reason"] for s in store.manifest.skipped}
    assert set(reasons) == {"a_no_poses", "c_garbage"}
    assert "'ego_pose'" in reasons["a_no_poses"] and "a_no_poses.db" in reasons["a_no_poses"]
    assert "c_garbage.db is not a readable SQLite database" in reasons["c_garbage"]
    with pytest.raises(MissingTableError, match="ego_pose"):
        load_log(logs / "a_no_poses.db", sensor_root, NuplanSettings.default(), lambda p, r: None)


def test_malicious_camera_blob_skips_the_log_without_running_it(tmp_path):
    sensor_root, marker = tmp_path / "sensor_blobs", tmp_path / "pwned"
    blob = pickle.dumps(_RunsShell(f"touch {marker}"))
    write_straight_log(tmp_path / "evil.db", sensor_root, intrinsic_blob=blob, n_images=12)
    with pytest.raises(NothingConvertedError):  # its only log skipped: nothing converted, a failed command
        _convert(tmp_path / "evil.db", sensor_root, tmp_path / "out")
    manifest = ClipStore(tmp_path / "out").manifest
    (skipped,) = manifest.skipped
    assert "evil.db camera.intrinsic" in skipped["reason"] and "refusing to unpickle" in skipped["reason"]
    assert manifest.num_clips == 0 and not marker.exists()


def test_log_without_camera_images_is_an_empty_source(tmp_path):
    sensor_root = tmp_path / "sensor_blobs"
    write_straight_log(tmp_path / "blind.db", sensor_root, n_images=0)
    with pytest.raises(EmptySourceError, match=r"blind\.db: no CAM_F0 images"):
        load_log(tmp_path / "blind.db", sensor_root, NuplanSettings.default(), lambda p, r: None)
    with pytest.raises(EmptySourceError, match=r"blind\.db: no CAM_B0 camera"):
        load_log(tmp_path / "blind.db", sensor_root, NuplanSettings.default(camera="CAM_B0"), lambda p, r: None)


def test_rerun_resumes_without_duplicates(tmp_path):
    sensor_root, logs = tmp_path / "sensor_blobs", tmp_path / "logs"
    logs.mkdir()
    for name in ("one", "two"):
        write_straight_log(logs / f"{name}.db", sensor_root, n_images=12, seed=len(name))
    args = ["data", "nuplan", f"db={logs}", f"sensor_root={sensor_root}", f"out={tmp_path / 'out'}", *SMALL]
    assert main(args) == 0
    first = ClipStore(tmp_path / "out").manifest
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("shard-*")}
    assert main(args) == 0
    second = ClipStore(tmp_path / "out").manifest
    assert [s.file for s in second.shards] == [s.file for s in first.shards]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("shard-*")} == written
    assert second.num_clips == first.num_clips == 2 and second.complete
