"""nuScenes (official devkit) -> clips: front camera, dense ego poses, 3D boxes and a map raster.

`foresight data nuscenes dataroot=DIR version=v1.0-mini out=STORE` converts one clip per scene
(more where a bad image leaves a gap or `max_clip_frames` cuts it). The rules:

- Camera: the `camera` channel's keyframes (2 Hz). When `fps` is above the keyframe rate and
  `use_sweeps` is on, the sweeps (~12 Hz) whose files are on disk join them (a download without
  sweeps is normal, so absent sweeps are not errors); at <= 2 Hz the keyframes alone are used, since
  mixing in sweeps would shift the 2 Hz grid off the annotated keyframes. A missing or corrupt
  keyframe image is reported as a bad file and dropped.
- Ego poses: every `ego_pose` of every sample_data of the scene's log between the clip's first and
  last frame (all sensors: ~160 Hz in practice), in a local ENU frame at the first of them.
- Objects: a keyframe frame gets its sample's annotations; a sweep frame gets the boxes of the
  nearest keyframe if that is within `SWEEP_BOX_MAX_OFFSET_S`, else none. Boxes are
  [x, y, z, length, width, height, yaw] in the local frame (nuScenes stores size as w, l, h).
- Camera intrinsics and extrinsics: the `calibrated_sensor` of the first frame (K scaled to the
  stored size; the camera-to-ego translation and rotation as they are, ego frame at the rear axle
  centre on the ground).
- Map: the log's semantic-prior raster (0.1 m/px) cropped to the clip's poses plus `map_margin_m`.
  The PNG is decoded only down to the patch's last row (see `data.png_window`); a missing map
  file leaves `map_patch` None and is reported as a bad file.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from data.convert import SourceItem, convert_to_store
from data.ego_motion import PoseStream, yaw_from_quaternion_wxyz
from data.errors import (
    BadFileReporter,
    CorruptFileError,
    DataError,
    EmptySourceError,
    MissingFileError,
    MissingTableError,
)
from data.frames import load_frames_at_rate
from data.png_window import UnsupportedPngError, png_size, read_png_gray8_window
from data.schema import CameraExtrinsics, CameraIntrinsics, Clip, FrameObjects, MapPatch
from data.settings import MAX_FRAME_SIDE_PX, FrameSettings, check_bool, check_int, check_real
from data.store.manifest import Manifest

log = logging.getLogger(__name__)

SOURCE_NAME = "nuscenes"
NUSCENES_LICENSE = "CC BY-NC-SA 4.0 (nuScenes terms of use)"
REQUIRED_TABLES = (
    "category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor",
    "ego_pose", "log", "scene", "sample", "sample_data", "sample_annotation", "map",
)  # fmt: skip
KEYFRAME_RATE_HZ = 2.0
SWEEP_BOX_MAX_OFFSET_S = 0.25
NATIVE_MAP_RESOLUTION_M = 0.1


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SceneSettings:
    """How a scene becomes clips: camera channel, output rate [Hz] and size [px], extras."""

    camera: str
    fps: float
    height: int
    width: int
    use_sweeps: bool
    with_objects: bool
    with_map: bool
    map_margin_m: float
    min_clip_frames: int
    max_clip_frames: int  # 0 = unlimited

    def __post_init__(self) -> None:
        if not isinstance(self.camera, str) or not self.camera:
            raise ValueError(f"camera must be a channel name such as CAM_FRONT, got {self.camera!r}")
        object.__setattr__(self, "fps", check_real("fps", self.fps, 0.0, low_open=True))
        check_int("height", self.height, 1, MAX_FRAME_SIDE_PX)
        check_int("width", self.width, 1, MAX_FRAME_SIDE_PX)
        for key in ("use_sweeps", "with_objects", "with_map"):
            check_bool(key, getattr(self, key))
        object.__setattr__(self, "map_margin_m", check_real("map_margin_m", self.map_margin_m, 0.0))
        check_int("min_clip_frames", self.min_clip_frames, 1)
        check_int("max_clip_frames", self.max_clip_frames, 0)

    @classmethod
    def from_cfg(cls, cfg: Any) -> "SceneSettings":
        """The settings from the composed `data nuscenes` config, checked key by key (no coercion:
        `height=1.5` is an error, not 1)."""
        return cls(
            camera=cfg.camera,
            fps=cfg.fps,
            height=cfg.height,
            width=cfg.width,
            use_sweeps=cfg.use_sweeps,
            with_objects=cfg.with_objects,
            with_map=cfg.with_map,
            map_margin_m=cfg.map_margin_m,
            min_clip_frames=cfg.min_clip_frames,
            max_clip_frames=cfg.max_clip_frames,
        )

    @property
    def uses_sweeps(self) -> bool:
        return self.use_sweeps and self.fps > KEYFRAME_RATE_HZ


# ----------------------------------------------------------------------------- loading the devkit


def check_tables(dataroot: str | Path, version: str) -> Path:
    """The table directory `<dataroot>/<version>`; MissingTableError names whatever is absent."""
    table_dir = Path(dataroot) / version
    if not table_dir.is_dir():
        raise MissingTableError(
            f"nuScenes version directory {table_dir} not found (dataroot={dataroot}, version={version}); "
            f"it must hold the tables {', '.join(t + '.json' for t in REQUIRED_TABLES)}"
        )
    missing = [f"{t}.json" for t in REQUIRED_TABLES if not (table_dir / f"{t}.json").is_file()]
    if missing:
        raise MissingTableError(f"nuScenes table(s) missing in {table_dir}: {', '.join(missing)}")
    return table_dir


def load_nuscenes(dataroot: str | Path, version: str):
    """The devkit's NuScenes, after checking the tables; bad tables become named DataErrors.

    A missing map PNG does not stop loading (the devkit asserts on it at construction): its
    MapMask is created without the file, and `scene_clips` reports the file when it needs it.
    """
    from nuscenes.nuscenes import NuScenes

    table_dir = check_tables(dataroot, version)
    try:
        missing_maps = _missing_map_files(Path(dataroot), table_dir)
        for path in missing_maps:
            log.warning("nuScenes map raster %s is missing: clips of its logs get no map patch", path)
        with _tolerate_missing_map_files(bool(missing_maps)):
            return NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"nuScenes table {_first_invalid_table(table_dir)} is not valid JSON: {exc}") from exc
    except (KeyError, IndexError) as exc:
        raise DataError(f"nuScenes tables in {table_dir} are inconsistent: a record refers to missing {exc}") from exc


def _read_table(table_dir: Path, name: str) -> list[dict[str, Any]]:
    path = table_dir / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"nuScenes table {path} is not valid JSON: {exc}") from exc


def _missing_map_files(dataroot: Path, table_dir: Path) -> list[Path]:
    records = _read_table(table_dir, "map")
    return [dataroot / r["filename"] for r in records if not (dataroot / r["filename"]).is_file()]


def _first_invalid_table(table_dir: Path) -> Path | str:
    for name in REQUIRED_TABLES:
        try:
            json.loads((table_dir / f"{name}.json").read_text())
        except json.JSONDecodeError:
            return table_dir / f"{name}.json"
    return f"(one of the tables in {table_dir})"


@contextmanager
def _tolerate_missing_map_files(enabled: bool) -> Iterator[None]:
    """While the devkit constructs NuScenes, let MapMask accept a PNG that is not on disk."""
    if not enabled:
        yield
        return
    import nuscenes.nuscenes as devkit

    base = devkit.MapMask

    class _MapMaskWithoutFile(base):
        def __init__(self, img_file: str, resolution: float = 0.1) -> None:
            if Path(img_file).is_file():
                super().__init__(img_file, resolution)
            else:
                self.img_file, self.resolution, self.foreground, self.background = img_file, resolution, 255, 0

    devkit.MapMask = _MapMaskWithoutFile
    try:
        yield
    finally:
        devkit.MapMask = base


# ----------------------------------------------------------------------------- ego poses


@dataclass(frozen=True)
class GlobalPoses:
    """Ego poses in the nuScenes global frame, sorted by time without duplicates.

    timestamps_us: (N,) int64; xyz_m: (N, 3) float64; rotation_wxyz: (N, 4) float64 unit quaternions.
    """

    timestamps_us: np.ndarray
    xyz_m: np.ndarray
    rotation_wxyz: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.timestamps_us)
        if self.xyz_m.shape != (n, 3) or self.rotation_wxyz.shape != (n, 4):
            raise ValueError(
                f"GlobalPoses shapes disagree: {n} times, xyz {self.xyz_m.shape}, rotation {self.rotation_wxyz.shape}"
            )
        if n > 1 and np.any(np.diff(self.timestamps_us) <= 0):
            raise ValueError("GlobalPoses.timestamps_us must be strictly increasing")

    def __len__(self) -> int:
        return len(self.timestamps_us)

    def between(self, t0_us: int, t1_us: int) -> "GlobalPoses":
        """Poses with t0 <= t <= t1."""
        a = int(np.searchsorted(self.timestamps_us, t0_us, side="left"))
        b = int(np.searchsorted(self.timestamps_us, t1_us, side="right"))
        return GlobalPoses(self.timestamps_us[a:b], self.xyz_m[a:b], self.rotation_wxyz[a:b])

    def to_local(self) -> tuple[PoseStream, tuple[float, float, float, float]]:
        """(poses in the local ENU frame at the first pose, origin_global (x, y, z, yaw))."""
        origin = self.xyz_m[0]
        yaw = yaw_from_quaternion_wxyz(self.rotation_wxyz)
        stream = PoseStream.from_unsorted(self.timestamps_us, self.xyz_m - origin, yaw, self.rotation_wxyz)
        return stream, (float(origin[0]), float(origin[1]), float(origin[2]), float(yaw[0]))


def log_poses(nusc) -> dict[str, GlobalPoses]:
    """Per log token, the ego poses of all its sample_data (every sensor, keyframes and sweeps).

    A pose record whose timestamp is not an integer or whose translation / rotation is not 3 / 4
    finite numbers is a CorruptFileError naming ego_pose.json and the record."""
    scene_log = {s["token"]: s["log_token"] for s in nusc.scene}
    sample_log = {s["token"]: scene_log.get(s["scene_token"]) for s in nusc.sample}
    rows: dict[str, list[tuple[int, list[float], list[float]]]] = {}
    for sd in nusc.sample_data:
        log_token = sample_log.get(sd["sample_token"])
        if log_token is None:
            continue  # a sample_data outside every scene carries no pose of interest
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        _check_pose_record(nusc, pose)
        rows.setdefault(log_token, []).append((pose["timestamp"], pose["translation"], pose["rotation"]))
    out = {}
    for log_token, r in rows.items():
        ts = np.array([p[0] for p in r], dtype=np.int64)
        order = np.argsort(ts, kind="stable")
        keep = order[np.concatenate([[True], np.diff(ts[order]) > 0])]
        xyz = np.array([p[1] for p in r], dtype=np.float64)[keep]
        rot = np.array([p[2] for p in r], dtype=np.float64)[keep]
        out[log_token] = GlobalPoses(ts[keep], xyz, rot)
    return out


def _check_pose_record(nusc, pose: dict[str, Any]) -> None:
    """CorruptFileError unless `pose` has an integer timestamp [us], a translation of 3 and a rotation
    of 4 finite numbers (JSON null would otherwise become a TypeError, or a silent NaN)."""
    where = f"nuScenes table {Path(nusc.table_root) / 'ego_pose.json'}, record {pose.get('token')!r}"
    t = pose.get("timestamp")
    if not isinstance(t, int) or isinstance(t, bool):
        raise CorruptFileError(f"{where}: timestamp must be an integer [us], got {t!r}")
    for key, n in (("translation", 3), ("rotation", 4)):
        v = pose.get(key)
        ok = isinstance(v, list) and len(v) == n
        ok = ok and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
        if not ok:
            raise CorruptFileError(f"{where}: {key} must be {n} finite numbers, got {v!r}")


# ----------------------------------------------------------------------------- camera stream


@dataclass(frozen=True)
class CameraStream:
    """A scene's camera images in time order: their sample_data records, with `keyframes` the
    subset of records that are keyframes (whether or not their files are in `records`)."""

    records: tuple[dict[str, Any], ...]
    keyframes: tuple[dict[str, Any], ...]
    sweeps_listed: int
    sweeps_on_disk: int

    @property
    def timestamps_us(self) -> np.ndarray:
        return np.array([r["timestamp"] for r in self.records], dtype=np.int64)


def camera_stream(nusc, scene: dict[str, Any], settings: SceneSettings) -> CameraStream:
    """The scene's keyframes of `settings.camera`, plus the sweeps between its first and last
    keyframe whose files exist when `settings.uses_sweeps`. EmptySourceError if no keyframe image
    of the scene is on disk."""
    root = Path(nusc.dataroot)
    keyframes = []
    token = scene["first_sample_token"]
    while token:
        sample = nusc.get("sample", token)
        if settings.camera in sample["data"]:
            keyframes.append(nusc.get("sample_data", sample["data"][settings.camera]))
        token = sample["next"]
    if not keyframes:
        raise EmptySourceError(f"scene {scene['name']} has no {settings.camera} sample_data")
    if not any((root / k["filename"]).is_file() for k in keyframes):
        raise EmptySourceError(
            f"scene {scene['name']}: none of its {len(keyframes)} {settings.camera} keyframe images is on disk "
            f"(e.g. {root / keyframes[0]['filename']})"
        )
    records, listed, on_disk = list(keyframes), 0, 0
    if settings.uses_sweeps:
        sd = keyframes[0]
        while sd["next"]:
            sd = nusc.get("sample_data", sd["next"])
            if sd["timestamp"] > keyframes[-1]["timestamp"]:
                break
            if not sd["is_key_frame"]:
                listed += 1
                if (root / sd["filename"]).is_file():
                    records.append(sd)
                    on_disk += 1
        if on_disk < listed:
            log.info(
                "scene %s: %d of %d %s sweep images are not on disk; using the others",
                scene["name"], listed - on_disk, listed, settings.camera,
            )  # fmt: skip
    records.sort(key=lambda r: r["timestamp"])
    return CameraStream(tuple(records), tuple(keyframes), listed, on_disk)


# ----------------------------------------------------------------------------- objects


def sample_objects(nusc, sample_token: str, origin_xyz: np.ndarray) -> FrameObjects:
    """The sample's annotated boxes in the local frame whose origin is `origin_xyz` (3,) global."""
    anns = [nusc.get("sample_annotation", t) for t in nusc.get("sample", sample_token)["anns"]]
    if not anns:
        return FrameObjects(np.zeros((0, 7), np.float32), (), ())
    xyz = np.array([a["translation"] for a in anns], dtype=np.float64) - origin_xyz
    wlh = np.array([a["size"] for a in anns], dtype=np.float64)
    yaw = yaw_from_quaternion_wxyz(np.array([a["rotation"] for a in anns], dtype=np.float64))
    boxes = np.column_stack([xyz, wlh[:, 1], wlh[:, 0], wlh[:, 2], yaw])
    return FrameObjects(boxes, tuple(a["category_name"] for a in anns), tuple(a["instance_token"] for a in anns))


def frame_objects(
    nusc, records: Sequence[dict[str, Any]], keyframes: Sequence[dict[str, Any]], origin_xyz: np.ndarray
) -> tuple[FrameObjects, ...]:
    """Boxes per frame record: a keyframe's own sample, a sweep's nearest keyframe within
    SWEEP_BOX_MAX_OFFSET_S, else no boxes."""
    key_ts = np.array([k["timestamp"] for k in keyframes], dtype=np.int64)
    cache: dict[str, FrameObjects] = {}
    empty = FrameObjects(np.zeros((0, 7), np.float32), (), ())
    out = []
    for rec in records:
        if rec["is_key_frame"]:
            sample_token = rec["sample_token"]
        else:
            j = int(np.argmin(np.abs(key_ts - rec["timestamp"])))
            if abs(int(key_ts[j]) - rec["timestamp"]) > SWEEP_BOX_MAX_OFFSET_S * 1e6:
                out.append(empty)
                continue
            sample_token = keyframes[j]["sample_token"]
        if sample_token not in cache:
            cache[sample_token] = sample_objects(nusc, sample_token, origin_xyz)
        out.append(cache[sample_token])
    return tuple(out)


# ----------------------------------------------------------------------------- map raster


def crop_map_patch(map_mask, origin_xyz: np.ndarray, local_xy: np.ndarray, margin_m: float) -> MapPatch:
    """The map raster around `local_xy` (N, 2) local positions plus `margin_m`, as a MapPatch.

    map_mask: the devkit MapMask (pixel (px, py) = round(x / res), round(H - y / res)). The native
    0.1 m raster is read with `read_png_gray8_window`; other resolutions or PNG kinds go through
    the devkit's full decode `map_mask.mask()`.
    """
    res = float(map_mask.resolution)
    xy = np.asarray(local_xy, dtype=np.float64)[:, :2] + np.asarray(origin_xyz, dtype=np.float64)[:2]
    (x_min, y_min), (x_max, y_max) = xy.min(axis=0) - margin_m, xy.max(axis=0) + margin_m
    c0, c1 = int(np.round(x_min / res)), int(np.round(x_max / res)) + 1
    path = Path(map_mask.img_file)
    mask = None
    if res == NATIVE_MAP_RESOLUTION_M:
        height = png_size(path)[0]
        r0, r1 = int(np.round(height - y_max / res)), int(np.round(height - y_min / res)) + 1
        try:
            mask = read_png_gray8_window(path, (r0, r1), (c0, c1))
        except UnsupportedPngError as exc:
            log.info("map %s: %s; using the devkit's full decode", path, exc)
    if mask is None:
        full = map_mask.mask()
        height = full.shape[0]
        r0, r1 = int(np.round(height - y_max / res)), int(np.round(height - y_min / res)) + 1
        mask = np.zeros((r1 - r0, c1 - c0), np.uint8)
        rs, re, cs, ce = max(r0, 0), min(r1, full.shape[0]), max(c0, 0), min(c1, full.shape[1])
        if rs < re and cs < ce:
            mask[rs - r0 : re - r0, cs - c0 : ce - c0] = full[rs:re, cs:ce]
    sw_x = (c0 - 0.5) * res - float(origin_xyz[0])
    sw_y = (height - r1 + 0.5) * res - float(origin_xyz[1])
    return MapPatch(np.ascontiguousarray(mask, dtype=np.uint8), res, (sw_x, sw_y))


# ----------------------------------------------------------------------------- scene -> clips


def scene_clips(
    nusc,
    scene: dict[str, Any],
    settings: SceneSettings,
    poses_by_log: dict[str, GlobalPoses],
    report_bad_file: BadFileReporter,
) -> list[Clip]:
    """All clips of one scene (see the module docstring for the rules)."""
    name = scene["name"]
    stream = camera_stream(nusc, scene, settings)
    root = Path(nusc.dataroot)
    segments = load_frames_at_rate(
        stream.timestamps_us,
        [root / r["filename"] for r in stream.records],
        settings.fps,
        settings.height,
        settings.width,
        report_bad_file,
        min_frames=settings.min_clip_frames,
        max_frames=settings.max_clip_frames or None,
    )
    if not segments:
        raise EmptySourceError(
            f"scene {name}: no run of >= {settings.min_clip_frames} readable {settings.camera} frames at "
            f"{settings.fps} Hz ({len(stream.keyframes)} keyframes at ~{KEYFRAME_RATE_HZ:g} Hz, "
            f"{stream.sweeps_on_disk} of {stream.sweeps_listed} sweeps on disk considered)"
        )
    log_rec = nusc.get("log", scene["log_token"])
    poses = poses_by_log.get(scene["log_token"])
    if poses is None or len(poses) < 2:
        raise EmptySourceError(f"scene {name}: its log {log_rec['logfile']} has fewer than 2 ego poses")
    intrinsics = _intrinsics(nusc, name, stream.records[0], segments[0].source_size_hw, settings)
    extrinsics = _extrinsics(nusc, name, stream.records[0])
    map_mask = None
    if settings.with_map:
        map_mask = nusc.get("map", log_rec["map_token"])["mask"]
        if not Path(map_mask.img_file).is_file():
            reason = f"nuScenes map raster not found: clips of {name} have no map patch"
            report_bad_file(Path(map_mask.img_file), reason)
            map_mask = None
    clips = []
    for k, seg in enumerate(segments):
        records = [stream.records[i] for i in seg.source_indices]
        t0, t1 = int(seg.timestamps_us[0]), int(seg.timestamps_us[-1])
        clip_poses = poses.between(t0, t1)
        if len(clip_poses) < 2:  # a one-frame clip: take the poses of the next frame period too
            clip_poses = poses.between(t0, t1 + int(1e6 / settings.fps))
        if len(clip_poses) < 2:
            raise EmptySourceError(f"scene {name}: fewer than 2 ego poses from {t0} us on")
        local, origin_global = clip_poses.to_local()
        origin_xyz = clip_poses.xyz_m[0]
        map_patch = None
        if map_mask is not None:
            try:
                map_patch = crop_map_patch(map_mask, origin_xyz, local.xyz_m[:, :2], settings.map_margin_m)
            except (CorruptFileError, MissingFileError) as exc:
                report_bad_file(Path(map_mask.img_file), str(exc))
        clips.append(
            Clip(
                clip_id=f"{name}_{k:02d}",
                source=SOURCE_NAME,
                frames=seg.frames,
                frame_timestamps_us=seg.timestamps_us,
                fps=settings.fps,
                intrinsics=intrinsics,
                extrinsics=extrinsics,
                poses=local,
                objects=frame_objects(nusc, records, stream.keyframes, origin_xyz) if settings.with_objects else None,
                map_patch=map_patch,
                origin_global=origin_global,
                license=NUSCENES_LICENSE,
                provenance=_provenance(nusc, scene, log_rec, settings.camera, records),
            )
        )
    return clips


def _intrinsics(
    nusc, name: str, record: dict[str, Any], source_hw: tuple[int, int], settings: SceneSettings
) -> CameraIntrinsics:
    """The camera's K at the native image size, scaled to the output size."""
    src_h, src_w = source_hw
    if (record["height"], record["width"]) not in ((src_h, src_w), (0, 0)):
        raise CorruptFileError(
            f"scene {name}: {settings.camera} images are {src_w}x{src_h} but sample_data says "
            f"{record['width']}x{record['height']} ({Path(nusc.dataroot) / record['filename']})"
        )
    calib = nusc.get("calibrated_sensor", record["calibrated_sensor_token"])
    k_matrix = np.asarray(calib["camera_intrinsic"], dtype=np.float64)
    if k_matrix.shape != (3, 3):
        raise CorruptFileError(f"scene {name}: calibrated_sensor {calib['token']} has no 3x3 camera_intrinsic")
    return CameraIntrinsics.from_matrix(k_matrix, src_w, src_h).resized(settings.width, settings.height)


def _extrinsics(nusc, name: str, record: dict[str, Any]) -> CameraExtrinsics:
    """The camera's mount from its calibrated_sensor: camera-to-ego translation [m] and rotation (w, x, y, z),
    the ego frame at the rear axle centre on the ground (see data.schema.CameraExtrinsics)."""
    calib = nusc.get("calibrated_sensor", record["calibrated_sensor_token"])
    try:
        return CameraExtrinsics(tuple(calib["rotation"]), tuple(calib["translation"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"scene {name}: calibrated_sensor {calib.get('token')} has no valid camera pose: {exc}") from exc


def _provenance(nusc, scene: dict[str, Any], log_rec: dict[str, Any], camera: str, records) -> dict[str, Any]:
    return {
        "dataset": "nuScenes",
        "version": nusc.version,
        "scene_token": scene["token"],
        "scene_name": scene["name"],
        "log_name": log_rec["logfile"],
        "location": log_rec["location"],
        "description": scene["description"],
        "camera": camera,
        "sample_data_tokens": [r["token"] for r in records],
        "frame_is_keyframe": [bool(r["is_key_frame"]) for r in records],
    }


# ----------------------------------------------------------------------------- command


def scene_items(nusc, settings: SceneSettings, scenes: Sequence[str] = ()) -> list[SourceItem]:
    """One SourceItem per scene (key = scene name), restricted to `scenes` when given."""
    by_name = {s["name"]: s for s in nusc.scene}
    wanted = list(scenes) or sorted(by_name)
    unknown = [s for s in wanted if s not in by_name]
    if unknown:
        raise DataError(
            f"scene(s) {unknown} are not in nuScenes {nusc.version} at {nusc.dataroot} ({len(by_name)} scenes there)"
        )
    poses_by_log = log_poses(nusc)
    return [SourceItem(n, partial(scene_clips, nusc, by_name[n], settings, poses_by_log)) for n in wanted]


def run(cfg) -> Manifest:
    """`foresight data nuscenes`: convert the scenes of `cfg.dataroot`/`cfg.version` into `cfg.out`."""
    FrameSettings.from_cfg(cfg)  # the store keys too, before the tables are read
    settings = SceneSettings.from_cfg(cfg)
    make_items = partial(nuscenes_items, str(cfg.dataroot), str(cfg.version), settings, tuple(str(s) for s in cfg.scenes))
    return convert_to_store(cfg, SOURCE_NAME, make_items(), f"nuScenes {cfg.version}", make_items=make_items)


def nuscenes_items(dataroot: str, version: str, settings: SceneSettings, scenes: tuple[str, ...]) -> list[SourceItem]:
    """The scene items of nuScenes `version` under `dataroot` (each worker process loads the tables once)."""
    return scene_items(load_nuscenes(dataroot, version), settings, scenes)
