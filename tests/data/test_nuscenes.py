"""nuScenes adapter on the real scene-0916 dataroot (read in place from ../shared/data; every
conversion writes into tmp_path, and broken copies of the dataroot are symlink farms)."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.command import Command
from data.errors import CorruptFileError, DataError, MissingTableError, NothingConvertedError
from data.png_window import UnsupportedPngError, read_png_gray8_window
from data.schema import CameraIntrinsics, MapPatch
from data.sources.nuscenes import (
    NUSCENES_LICENSE,
    SceneSettings,
    crop_map_patch,
    load_nuscenes,
    log_poses,
    scene_clips,
)
from data.store import ClipStore
from data.store.manifest import Manifest
from foresight.cli import main, run_subcommand
from tests.conftest import shared_data

FIXTURE = "nuscenes-scene-0916"
VERSION = "v1.0-mini"
SCENE = "scene-0916"
SMALL = ["height=72", "width=128"]
SETTINGS = SceneSettings(
    camera="CAM_FRONT", fps=2.0, height=72, width=128, use_sweeps=True, with_objects=True,
    with_map=True, map_margin_m=40.0, min_clip_frames=2, max_clip_frames=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def dataroot() -> Path:
    return shared_data(FIXTURE)


@pytest.fixture(scope="module")
def nusc(dataroot):
    return load_nuscenes(dataroot, VERSION)


@pytest.fixture(scope="module")
def clip(nusc):
    """The scene converted in memory (72x128, objects, map), exactly as `run` converts it."""
    bad = []
    clips = scene_clips(nusc, nusc.scene[0], SETTINGS, log_poses(nusc), lambda path, reason: bad.append(path))
    assert bad == [] and len(clips) == 1
    return clips[0]


def _keyframes(nusc) -> list[dict]:
    """CAM_FRONT keyframe sample_data of the scene in time order, straight from the devkit."""
    out, token = [], nusc.scene[0]["first_sample_token"]
    while token:
        sample = nusc.get("sample", token)
        out.append(nusc.get("sample_data", sample["data"]["CAM_FRONT"]))
        token = sample["next"]
    return out


def _convert(dataroot: Path, out: Path, *overrides: str):
    return run_subcommand("data", "nuscenes", [f"dataroot={dataroot}", f"version={VERSION}", f"out={out}", *overrides])


def _dataroot_copy(
    src: Path, dst: Path, *, drop_tables=(), images: bool = True, maps: bool = True, truncate: str | None = None
) -> Path:
    """A symlink copy of the fixture; `truncate` names one CAM_FRONT image replaced by its first half."""
    (dst / VERSION).mkdir(parents=True)
    for table in (src / VERSION).iterdir():
        if table.name not in drop_tables:
            (dst / VERSION / table.name).symlink_to(table)
    if maps:
        (dst / "maps").symlink_to(src / "maps")
    if images:
        cam = dst / "samples" / "CAM_FRONT"
        cam.mkdir(parents=True)
        for img in (src / "samples" / "CAM_FRONT").iterdir():
            if img.name == truncate:
                data = img.read_bytes()
                (cam / img.name).write_bytes(data[: len(data) // 2])
            else:
                (cam / img.name).symlink_to(img)
    return dst


# ----------------------------------------------------------------------------- the converted clip


def test_scene_is_one_clip_of_the_configured_size_with_provenance(clip, nusc):
    keys = _keyframes(nusc)
    assert clip.clip_id == f"{SCENE}_00" and clip.source == "nuscenes" and clip.fps == 2.0
    assert clip.frames.shape == (41, 72, 128, 3) and clip.frames.dtype == np.uint8
    assert clip.frames.std() > 10  # real pictures, not blank frames
    np.testing.assert_array_equal(clip.frame_timestamps_us, [k["timestamp"] for k in keys])
    assert clip.license == NUSCENES_LICENSE
    prov = clip.provenance
    assert prov["scene_name"] == SCENE and prov["scene_token"] == nusc.scene[0]["token"]
    assert prov["log_name"] == "n015-2018-10-08-15-36-50+0800" and prov["location"] == "singapore-queenstown"
    assert prov["description"].startswith("Parking lot") and prov["camera"] == "CAM_FRONT"
    assert prov["sample_data_tokens"] == [k["token"] for k in keys] and all(prov["frame_is_keyframe"])
    json.dumps(dict(prov))  # stored as JSON


def test_ego_poses_are_the_dense_stream_in_a_local_frame(clip, nusc):
    poses = clip.poses
    duration_s = (poses.end_us - poses.start_us) * 1e-6
    assert len(poses) / duration_s > 12  # every sensor's ego pose, not only the 2 Hz keyframes
    assert poses.start_us == clip.frame_timestamps_us[0] and poses.end_us == clip.frame_timestamps_us[-1]
    first = nusc.get("ego_pose", _keyframes(nusc)[0]["ego_pose_token"])
    np.testing.assert_allclose(clip.origin_global[:3], first["translation"])
    np.testing.assert_allclose(poses.xyz_m[0], 0.0, atol=1e-9)
    np.testing.assert_allclose(poses.rotation_wxyz[0], first["rotation"])
    np.testing.assert_allclose(np.linalg.norm(poses.rotation_wxyz, axis=1), 1.0, atol=1e-6)
    assert abs(poses.yaw_rad[0] - clip.origin_global[3]) < 1e-9  # yaw stays the global heading


def test_speed_and_heading_match_the_scene(clip):
    speed = clip.frame_speed_mps()
    assert abs(speed.max() - 6.1) < 0.5
    heading_change_deg = np.degrees(clip.frame_poses()[-1, 3] - clip.frame_poses()[0, 3])
    assert abs(heading_change_deg - (-86.0)) < 5.0


def test_speeds_match_a_finite_difference_of_the_raw_ego_pose_table(clip, nusc):
    # The fixture has no CAN bus. Rule: at each keyframe, the speed the clip derives (central
    # difference over +-0.25 s of the dense stream) must agree within 0.5 m/s with the central
    # difference of the devkit's own ego_pose records of the neighbouring CAM_FRONT keyframes
    # (one-sided at the ends).
    raw = [nusc.get("ego_pose", k["ego_pose_token"]) for k in _keyframes(nusc)]
    t = np.array([p["timestamp"] for p in raw], dtype=np.float64) * 1e-6
    xy = np.array([p["translation"][:2] for p in raw])
    lo, hi = np.maximum(np.arange(len(t)) - 1, 0), np.minimum(np.arange(len(t)) + 1, len(t) - 1)
    reference = np.linalg.norm(xy[hi] - xy[lo], axis=1) / (t[hi] - t[lo])
    assert np.abs(clip.frame_speed_mps() - reference).max() < 0.5
    assert reference.max() > 5.0  # the comparison covers the fast stretch


def test_commands_follow_the_turns(clip):
    # The ego drives two right bends (-150 deg), a straight, then a left bend (+65 deg): net -86 deg.
    # It is already turning right at -20 deg/s at frame 0, so the first command is RIGHT, not STRAIGHT.
    cmd = clip.commands
    assert np.degrees(clip.frame_yaw_rate_rps()[0]) < -15
    assert set(cmd[:5]) == {Command.RIGHT} and set(cmd[13:18]) == {Command.RIGHT}
    assert set(cmd[22:29]) == {Command.STRAIGHT}
    assert Command.LEFT in cmd[30:37]


def test_future_trajectory_from_frame_0(clip):
    traj = clip.trajectory(0, horizon_s=3.0, dt_s=0.5)
    assert traj.poses.shape == (6, 3) and traj.valid.all()
    np.testing.assert_allclose(traj.times_s, np.arange(1, 7) * 0.5)
    xy = np.vstack([[0.0, 0.0], traj.poses[:, :2]])
    steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    assert np.all((steps > 1.5) & (steps < 3.5))  # ~4 m/s
    assert np.all(np.diff(traj.poses[:, 0]) > 0)  # forward
    assert traj.poses[-1, 1] < -3 and traj.poses[-1, 2] < np.radians(-30)  # bending right


def test_intrinsics_are_scaled_to_the_frames(clip, nusc):
    calib = nusc.get("calibrated_sensor", _keyframes(nusc)[0]["calibrated_sensor_token"])
    k = np.asarray(calib["camera_intrinsic"])
    intr = clip.intrinsics
    assert (intr.width, intr.height) == (128, 72)
    assert intr.fx == pytest.approx(k[0, 0] * 128 / 1600) and intr.fy == pytest.approx(k[1, 1] * 72 / 900)
    assert intr == CameraIntrinsics.from_matrix(k, 1600, 900).resized(128, 72)


def test_objects_are_the_annotations_in_the_local_frame(clip, nusc):
    objs = clip.objects
    assert len(objs) == 41 and sum(len(o) for o in objs) == len(nusc.sample_annotation) == 2424
    assert len({t for o in objs for t in o.track_ids}) == 95
    ann = nusc.get("sample_annotation", nusc.get("sample", nusc.scene[0]["first_sample_token"])["anns"][0])
    box = objs[0].boxes[list(objs[0].track_ids).index(ann["instance_token"])]
    w, l, h = ann["size"]
    local_xyz = np.subtract(ann["translation"], clip.origin_global[:3])
    np.testing.assert_allclose(box[:6], [*local_xyz, l, w, h], atol=1e-4)
    boxes = np.concatenate([o.boxes for o in objs])
    cats = np.array([c for o in objs for c in o.categories])
    cars = boxes[cats == "vehicle.car"]
    assert len(cars) > 100 and np.all((cars[:, 3] > 3) & (cars[:, 3] < 6.5) & (cars[:, 4] > 1.4) & (cars[:, 4] < 2.5))
    assert np.median(cars[:, 3] / cars[:, 4]) > 2  # length along the heading, not width
    peds = boxes[np.char.startswith(cats, "human.pedestrian")]
    assert len(peds) > 0 and np.all((peds[:, 5] > 0.8) & (peds[:, 5] < 2.3))
    assert np.abs(boxes[:, :2]).max() < 150  # local frame, not global coordinates


def test_map_patch_has_drivable_area_under_the_ego(clip):
    patch = clip.map_patch
    assert patch.resolution_m == pytest.approx(0.1)
    xy = clip.poses.xyz_m[:, :2]
    value = _patch_values(patch, xy)
    assert (value > 0).mean() > 0.9
    assert 0 < (patch.mask > 0).mean() < 1
    height_m, width_m = np.array(patch.mask.shape) * patch.resolution_m
    extent = xy.max(axis=0) - xy.min(axis=0)
    assert width_m >= extent[0] + 80 - 0.3 and height_m >= extent[1] + 80 - 0.3


def _patch_values(patch: MapPatch, local_xy: np.ndarray) -> np.ndarray:
    """Mask values at local positions (MapPatch: SW-corner origin, row 0 = north)."""
    col = np.floor((local_xy[:, 0] - patch.origin_xy[0]) / patch.resolution_m).astype(int)
    row = patch.mask.shape[0] - 1 - np.floor((local_xy[:, 1] - patch.origin_xy[1]) / patch.resolution_m).astype(int)
    return patch.mask[row, col]


# ----------------------------------------------------------------------------- the map raster reader


def _write_png_gray8(path: Path, img: np.ndarray, filters: list[int]) -> None:
    """Write `img` (H, W) uint8 as a PNG with the given per-row filters (0 None, 1 Sub, 2 Up)."""
    prev = np.zeros(img.shape[1], np.uint8)
    rows = []
    for row, f in zip(img, filters):
        enc = {0: row, 1: row - np.concatenate([[0], row[:-1]]).astype(np.uint8), 2: row - prev}[f]
        rows.append(bytes([f]) + enc.astype(np.uint8).tobytes())
        prev = row
    idat = zlib.compress(b"".join(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", img.shape[1], img.shape[0], 8, 0, 0, 0, 0)
    half = len(idat) // 2
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat[:half]) + chunk(b"IDAT", idat[half:]) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def _blocky_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    cells = (rng.random((h // 4 + 1, w // 4 + 1)) > 0.5).astype(np.uint8) * 255
    return np.repeat(np.repeat(cells, 4, 0), 4, 1)[:h, :w]


def test_png_window_reader_matches_a_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (60, 70), dtype=np.uint8)
    path = tmp_path / "m.png"
    _write_png_gray8(path, img, [int(f) for f in rng.integers(0, 3, 60)])
    np.testing.assert_array_equal(np.asarray(Image.open(path)), img)  # a valid PNG
    np.testing.assert_array_equal(read_png_gray8_window(path, (10, 30), (5, 66)), img[10:30, 5:66])
    np.testing.assert_array_equal(read_png_gray8_window(path, (0, 60), (0, 70)), img)
    outside = read_png_gray8_window(path, (-5, 8), (60, 80))  # zeros beyond the image
    expected = np.zeros((13, 20), np.uint8)
    expected[5:, :10] = img[:8, 60:]
    np.testing.assert_array_equal(outside, expected)
    Image.fromarray(img).save(tmp_path / "adaptive.png")  # Pillow picks Paeth rows too
    with pytest.raises(UnsupportedPngError):
        read_png_gray8_window(tmp_path / "adaptive.png", (0, 60), (0, 70))


@pytest.mark.parametrize("writer,resolution", [("plain", 0.1), ("adaptive", 0.1), ("plain", 0.2)])
def test_map_patch_agrees_with_the_devkit_map_mask(tmp_path, writer, resolution):
    # Windowed reader (plain 0.1 m) and the devkit fallback (Paeth rows, or another resolution)
    # must give the pixel the devkit's own MapMask.is_on_mask gives, in the MapPatch convention.
    from nuscenes.utils.map_mask import MapMask

    rng = np.random.default_rng(1)
    img = _blocky_mask(rng, 300, 400)
    path = tmp_path / "map.png"
    if writer == "plain":
        _write_png_gray8(path, img, [int(f) for f in rng.integers(0, 3, 300)])
    else:
        Image.fromarray(img).save(path)
    devkit = MapMask(str(path), resolution=resolution)
    origin = np.array([17.3, 11.9, 0.4])
    local_path = np.array([[0.0, 0.0], [6.0, -3.0], [9.5, 4.0]])
    patch = crop_map_patch(devkit, origin, local_path, margin_m=2.0)
    assert patch.resolution_m == resolution
    pts = np.column_stack([rng.uniform(-1.9, 11.4, 500), rng.uniform(-4.9, 5.9, 500)])
    on = devkit.is_on_mask(pts[:, 0] + origin[0], pts[:, 1] + origin[1])
    np.testing.assert_array_equal(_patch_values(patch, pts) == 255, on)
    assert 0.2 < on.mean() < 0.8


# ----------------------------------------------------------------------------- conversion command


def test_conversion_writes_one_clip_and_resumes_without_duplicates(tmp_path, dataroot, clip):
    out = tmp_path / "store"
    manifest = _convert(dataroot, out, *SMALL)
    assert (manifest.num_clips, manifest.num_frames) == (1, 41)
    assert manifest.skipped == [] and manifest.skipped_files == [] and manifest.complete
    shards = [s.sha256 for s in manifest.shards]
    again = _convert(dataroot, out, *SMALL)
    assert (again.num_clips, again.num_frames) == (1, 41) and [s.sha256 for s in again.shards] == shards
    store = ClipStore(out, verify=True)
    back = store.load_clip(0)
    assert len(store) == 1 and back.frames.shape == (41, 72, 128, 3) and back.license == NUSCENES_LICENSE
    np.testing.assert_array_equal(back.commands, clip.commands)
    np.testing.assert_array_equal(back.map_patch.mask, clip.map_patch.mask)
    assert sum(len(o) for o in back.objects) == 2424


def test_truncated_keyframe_is_reported_and_the_rest_converts(tmp_path, dataroot):
    names = sorted(p.name for p in (dataroot / "samples" / "CAM_FRONT").iterdir())
    bad = names[20]
    root = _dataroot_copy(dataroot, tmp_path / "root", truncate=bad)
    manifest = _convert(root, tmp_path / "out", *SMALL, "with_map=false")
    assert [Path(f["file"]).name for f in manifest.skipped_files] == [bad]
    assert "truncated" in manifest.skipped_files[0]["reason"]
    # The 1 s hole splits the 2 Hz run: 20 + 20 frames.
    assert manifest.num_frames == 40 and manifest.num_clips == 2 and manifest.skipped == []


def test_missing_table_or_version_is_a_clear_error(tmp_path, dataroot, capsys):
    # A missing table makes the whole dataroot unusable: the command fails (exit code 1) naming it.
    root = _dataroot_copy(dataroot, tmp_path / "root", drop_tables={"sample_data.json"}, images=False, maps=False)
    with pytest.raises(MissingTableError, match=r"sample_data\.json"):
        _convert(root, tmp_path / "out")
    assert main(["data", "nuscenes", f"dataroot={root}", f"out={tmp_path / 'out'}"]) == 1
    assert "sample_data.json" in capsys.readouterr().err
    with pytest.raises(MissingTableError, match="version directory .*v1.0-trainval"):
        run_subcommand("data", "nuscenes", [f"dataroot={dataroot}", "version=v1.0-trainval", f"out={tmp_path / 'o2'}"])


def test_corrupt_table_is_named(tmp_path, dataroot):
    root = _dataroot_copy(dataroot, tmp_path / "root", drop_tables={"scene.json"}, images=False, maps=False)
    (root / VERSION / "scene.json").write_text('[{"token": "x", ')
    with pytest.raises(CorruptFileError, match=r"scene\.json"):
        load_nuscenes(root, VERSION)


def test_scene_without_images_is_skipped_by_name(tmp_path, dataroot):
    root = _dataroot_copy(dataroot, tmp_path / "root", images=False)
    with pytest.raises(NothingConvertedError, match=SCENE):  # nothing converted: a failed command
        _convert(root, tmp_path / "out", *SMALL)
    manifest = Manifest.load(tmp_path / "out")
    assert manifest.num_clips == 0 and [s["item"] for s in manifest.skipped] == [SCENE]
    assert SCENE in manifest.skipped[0]["reason"] and "CAM_FRONT" in manifest.skipped[0]["reason"]


def test_missing_map_raster_is_reported_not_fatal(tmp_path, dataroot):
    root = _dataroot_copy(dataroot, tmp_path / "root", maps=False)
    manifest = _convert(root, tmp_path / "out", *SMALL, "with_objects=false")
    assert (manifest.num_clips, manifest.num_frames) == (1, 41)
    assert [Path(f["file"]).name for f in manifest.skipped_files] == ["93406b464a165eaba6d9de76ca09f5da.png"]
    back = ClipStore(tmp_path / "out").load_clip(0)
    assert back.map_patch is None and back.objects is None


def test_sweeps_on_disk_raise_the_frame_rate(tmp_path, dataroot, nusc):
    # Stand-in sweep files (links to the nearest keyframe image) for every CAM_FRONT sweep row.
    root = _dataroot_copy(dataroot, tmp_path / "root", maps=False)
    keys = _keyframes(nusc)
    key_ts = np.array([k["timestamp"] for k in keys])
    sweeps = [sd for sd in nusc.sample_data if sd["channel"] == "CAM_FRONT" and not sd["is_key_frame"]]
    for sd in sweeps:
        target = root / sd["filename"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(dataroot / keys[int(np.argmin(np.abs(key_ts - sd["timestamp"])))]["filename"])
    settings = replace(SETTINGS, fps=4.0, with_map=False, height=36, width=64)
    nusc_copy = load_nuscenes(root, VERSION)
    bad = []
    clips = scene_clips(nusc_copy, nusc_copy.scene[0], settings, log_poses(nusc_copy), lambda p, r: bad.append(p))
    assert bad == []
    assert len(clips) == 1
    c = clips[0]
    assert c.num_frames > 70 and np.all(np.abs(np.diff(c.frame_timestamps_us) - 250_000) < 100_000)
    is_key = np.array(c.provenance["frame_is_keyframe"])
    assert is_key.any() and (~is_key).any()
    annotations = {k["timestamp"]: len(nusc.get("sample", k["sample_token"])["anns"]) for k in keys}
    for t, objs in zip(c.frame_timestamps_us, c.objects):  # nearest keyframe's boxes (always within 0.25 s here)
        assert len(objs) == annotations[int(key_ts[np.argmin(np.abs(key_ts - t))])]


def test_rate_above_2hz_without_sweeps_skips_the_scene_with_a_reason(tmp_path, dataroot):
    with pytest.raises(NothingConvertedError, match="0 of 199 sweeps on disk"):
        _convert(dataroot, tmp_path / "out", "height=36", "width=64", "fps=4", "with_map=false")
    manifest = Manifest.load(tmp_path / "out")
    assert manifest.num_clips == 0 and manifest.skipped_files == []  # absent sweeps are not bad files
    assert "0 of 199 sweeps on disk" in manifest.skipped[0]["reason"]


def test_unknown_scene_is_refused(tmp_path, dataroot):
    with pytest.raises(DataError, match="scene-9999"):
        _convert(dataroot, tmp_path / "out", "scenes=[scene-9999]")


def test_cli_converts_at_the_default_size(tmp_path, dataroot):
    out = tmp_path / "cli"
    code = main(["data", "nuscenes", f"dataroot={dataroot}", f"out={out}", f"scenes=[{SCENE}]", "with_map=false"])
    assert code == 0
    store = ClipStore(out)
    assert store.manifest.num_frames == 41 and store.load_frames(0, [0, 40]).shape == (2, 288, 512, 3)
    assert store.meta(0)["intrinsics"]["width"] == 512
