"""nuPlan logs -> clip store.

    foresight data nuplan db=<a .db file or a folder of them> sensor_root=<sensor_blobs dir> out=DIR

Reads nuPlan's SQLite schema directly (see data.sources.nuplan_schema; nuplan-devkit is not
needed). Each log database is one source item; each gap-free run of the chosen camera's images
becomes a clip with:

- frames: `image` rows of the camera channel, files under `sensor_root`, resampled to `fps` and
  resized (data.frames.load_frames_at_rate); intrinsics from the camera row's pickled `intrinsic`
  (read with data.restricted_unpickle), scaled to the stored frame size; extrinsics (camera to ego,
  ego frame at the rear axle) from its `translation` and `rotation` (w, x, y, z), None if either is NULL;
- poses: `ego_pose` rows from `pose_margin_s` before the first frame to `pose_margin_s` after the last
  (so the last frames' commands and trajectories see the road ahead where the log has it), in a
  local ENU frame at the first of them (`origin_global` = its global x, y, z, yaw);
- objects: for each frame, the `lidar_box` rows of the nearest labelled `lidar_pc` within
  `object_tolerance_s`, moved into the local frame as [x, y, z, length, width, height, yaw];
- provenance: log, vehicle, location, map version, database file, camera, image / lidar_pc tokens
  (hex) and the scenario tags and scenes the clip spans.

The database's own ego velocities are not stored: clip speeds always come from the poses.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from configs import defaults
from data.convert import SourceItem, convert_to_store
from data.ego_motion import PoseStream, wrap_angle, yaw_from_quaternion_wxyz
from data.errors import BadFileReporter, DataError, EmptySourceError, MissingFileError
from data.frames import FrameSegment, load_frames_at_rate
from data.restricted_unpickle import restricted_loads
from data.schema import CameraExtrinsics, CameraIntrinsics, Clip, FrameObjects
from data.settings import check_bool, check_int, check_real
from data.sources.nuplan_schema import (
    OBJECT_TABLES,
    REQUIRED_TABLES,
    open_log_db,
    require_tables,
    table_columns,
    token_hex,
)
from data.store.manifest import Manifest

log = logging.getLogger(__name__)

SOURCE = "nuplan"
NUPLAN_LICENSE = "nuPlan dataset license (non-commercial)"
MIN_SOURCE_RATE_FRACTION = 0.8  # a camera slower than this fraction of `fps` cannot be resampled to it


@dataclass(frozen=True)
class NuplanSettings:
    """What to extract from each log (configs/data/nuplan.yaml with frames.yaml holds the defaults).

    camera: channel name (CAM_F0 is the front camera). fps: target frame rate [Hz].
    height, width: stored frame size [px]. min_clip_frames / max_clip_frames: segment limits
    (max 0 = unlimited). pose_margin_s: ego poses kept before the first and after the last frame [s].
    object_tolerance_s: largest |frame time - lidar_pc time| whose boxes label a frame [s].
    """

    camera: str
    fps: float
    height: int
    width: int
    min_clip_frames: int
    max_clip_frames: int
    with_objects: bool
    pose_margin_s: float
    object_tolerance_s: float

    def __post_init__(self) -> None:
        if not self.camera:
            raise ValueError("camera: a channel name such as CAM_F0 is required")
        check_real("fps", self.fps, 0.0, low_open=True)
        check_int("height", self.height, 1)
        check_int("width", self.width, 1)
        check_int("min_clip_frames", self.min_clip_frames, 1)
        check_int("max_clip_frames", self.max_clip_frames, 0)
        check_bool("with_objects", self.with_objects)
        check_real("pose_margin_s", self.pose_margin_s, 0.0)
        check_real("object_tolerance_s", self.object_tolerance_s, 0.0)

    @classmethod
    def from_cfg(cls, cfg: Any) -> "NuplanSettings":
        """The settings from the composed `data nuplan` config (a DictConfig or a plain mapping)."""
        return cls(**{name: cfg[name] for name in cls.__dataclass_fields__})  # checked in __post_init__, not coerced

    @classmethod
    def default(cls, **changes: Any) -> "NuplanSettings":
        """configs/data/nuplan.yaml (with frames.yaml), with `changes` (field=value) applied."""
        return replace(cls.from_cfg(defaults("data/nuplan")), **changes)


def run(cfg: Any) -> Manifest:
    """Convert every log database under `cfg.db` (a .db file or a folder of them) into `cfg.out`."""
    settings = NuplanSettings.from_cfg(cfg)
    dbs = find_log_dbs(Path(str(cfg.db)))
    sensor_root = Path(str(cfg.sensor_root))
    if not sensor_root.is_dir():
        raise FileNotFoundError(f"sensor_root {sensor_root} is not a directory (nuPlan's sensor_blobs folder)")
    make_items = partial(log_items, dbs, sensor_root, settings)
    return convert_to_store(cfg, SOURCE, make_items(), "nuPlan logs", make_items=make_items)


def log_items(dbs: list[Path], sensor_root: Path, settings: NuplanSettings) -> list[SourceItem]:
    """One item per log database (key: its file stem)."""
    return [SourceItem(db.stem, partial(load_log, db, sensor_root, settings)) for db in dbs]


def find_log_dbs(db: Path) -> list[Path]:
    """The log databases named by `db`: the file itself, or the `*.db` files directly in a folder."""
    if db.is_file():
        return [db]
    if db.is_dir():
        dbs = sorted(p for p in db.glob("*.db") if p.is_file())
        if not dbs:
            raise FileNotFoundError(f"no nuPlan .db files in {db}")
        return dbs
    raise FileNotFoundError(f"nuPlan database path {db} does not exist")


def load_log(db_path: Path, sensor_root: Path, settings: NuplanSettings, report_bad_file: BadFileReporter) -> list[Clip]:
    """All clips of one log database; DataError (naming the file) when the log is unusable."""
    conn = open_log_db(db_path)
    try:
        return _LogReader(conn, Path(db_path), Path(sensor_root), settings).clips(report_bad_file)
    except sqlite3.Error as exc:
        raise DataError(f"{Path(db_path).name}: SQLite error: {exc} ({db_path})") from exc
    finally:
        conn.close()


@dataclass(frozen=True)
class _Camera:
    token: bytes
    channel: str
    model: str | None
    intrinsics: CameraIntrinsics | None  # native intrinsics; None until the image size is known
    k_matrix: np.ndarray  # (3, 3)
    size_wh: tuple[int, int] | None
    translation_m: list[float] | None
    rotation_wxyz: list[float] | None
    distortion: list[float] | None

    def extrinsics(self, log_name: str) -> CameraExtrinsics | None:
        """The camera-to-ego transform of the camera row, None if the row lacks translation or rotation."""
        if self.translation_m is None or self.rotation_wxyz is None:
            return None
        try:
            return CameraExtrinsics(tuple(self.rotation_wxyz), tuple(self.translation_m))
        except ValueError as exc:
            raise DataError(f"{log_name} camera.rotation ({self.channel}): {exc}") from exc


class _LogReader:
    """Reads one open log database; every error message names the database file."""

    def __init__(self, conn: sqlite3.Connection, db_path: Path, sensor_root: Path, settings: NuplanSettings) -> None:
        self.conn, self.db, self.sensor_root, self.s = conn, db_path, sensor_root, settings
        self.name = db_path.name

    # -- the log ------------------------------------------------------------------------------
    def clips(self, report_bad_file: BadFileReporter) -> list[Clip]:
        s = self.s
        require_tables(self.conn, REQUIRED_TABLES + (OBJECT_TABLES if s.with_objects else ()), self.db)
        log_row = self._log_row()
        camera = self._camera()
        tokens, ts, files = self._images(camera.token)
        source_hz = self._source_rate_hz(ts)
        paths = [self.sensor_root / f for f in files]
        if not any(p.is_file() for p in paths):
            raise MissingFileError(
                f"{self.name}: none of its {len(paths)} {s.camera} image files exist under sensor_root "
                f"{self.sensor_root} (first expected: {paths[0]})"
            )
        segments = load_frames_at_rate(
            ts, paths, s.fps, s.height, s.width, report_bad_file,
            min_frames=s.min_clip_frames, max_frames=s.max_clip_frames or None,
        )
        if not segments:
            raise EmptySourceError(
                f"{self.name}: no run of at least {s.min_clip_frames} readable {s.camera} frames at {s.fps} Hz"
            )
        return [
            self._clip(k, seg, log_row, camera, tokens, source_hz) for k, seg in enumerate(segments)
        ]

    def _log_row(self) -> dict[str, Any]:
        cols = ["token", "vehicle_name", "date", "logfile", "location", "map_version"]
        has_license = "license" in table_columns(self.conn, "log")
        rows = self.conn.execute(f"SELECT {', '.join(cols + ['license'] * has_license)} FROM log").fetchall()
        if not rows:
            raise EmptySourceError(f"{self.name}: the log table is empty ({self.db})")
        if len(rows) > 1:
            raise DataError(f"{self.name}: the log table holds {len(rows)} logs; expected one per database")
        row = dict(zip(cols + ["license"] * has_license, rows[0]))
        row["token"] = token_hex(row["token"])
        row["license"] = row.get("license") or NUPLAN_LICENSE
        return row

    def _camera(self) -> _Camera:
        channel = self.s.camera
        rows = self.conn.execute(
            "SELECT token, model, translation, rotation, intrinsic, distortion, width, height "
            "FROM camera WHERE channel = ?",
            (channel,),
        ).fetchall()
        if not rows:
            raise EmptySourceError(f"{self.name}: no {channel} camera in its camera table ({self.db})")
        if len(rows) > 1:
            raise DataError(f"{self.name}: {len(rows)} {channel} rows in the camera table; expected one")
        token, model, translation, rotation, intrinsic, distortion, width, height = rows[0]
        what = f"{self.name} camera.%s ({channel})"
        if intrinsic is None:
            raise DataError(what % "intrinsic" + " is NULL")
        k = _float_array(restricted_loads(intrinsic, what % "intrinsic"), (3, 3), what % "intrinsic")
        if not (k[0, 0] > 0 and k[1, 1] > 0):
            raise DataError(f"{what % 'intrinsic'}: focal lengths must be > 0, got {k[0, 0]}, {k[1, 1]}")
        size = (int(width), int(height)) if width and height and width > 0 and height > 0 else None
        return _Camera(
            token=token,
            channel=channel,
            model=model,
            intrinsics=CameraIntrinsics.from_matrix(k, *size) if size else None,
            k_matrix=k,
            size_wh=size,
            translation_m=_optional_floats(translation, (3,), what % "translation"),
            rotation_wxyz=_optional_floats(rotation, (4,), what % "rotation"),
            distortion=_optional_floats(distortion, None, what % "distortion"),
        )

    def _images(self, camera_token: bytes) -> tuple[list[bytes], np.ndarray, list[str]]:
        """Tokens, timestamps [us] (sorted) and file names of the camera's images within the ego poses' span."""
        rows = self.conn.execute(
            "SELECT token, timestamp, filename_jpg FROM image "
            "WHERE camera_token = ? AND filename_jpg IS NOT NULL AND timestamp IS NOT NULL ORDER BY timestamp",
            (camera_token,),
        ).fetchall()
        if not rows:
            raise EmptySourceError(f"{self.name}: no {self.s.camera} images in its image table ({self.db})")
        lo, hi = self.conn.execute("SELECT min(timestamp), max(timestamp) FROM ego_pose").fetchone()
        if lo is None:
            raise EmptySourceError(f"{self.name}: its ego_pose table is empty ({self.db})")
        kept = [r for r in rows if lo <= r[1] <= hi]
        if not kept:
            raise EmptySourceError(f"{self.name}: no {self.s.camera} image falls within the ego poses' time span")
        if len(kept) < len(rows):
            log.warning("%s: %d %s images lie outside the ego poses' time span; left out",
                        self.name, len(rows) - len(kept), self.s.camera)
        return [r[0] for r in kept], np.array([r[1] for r in kept], dtype=np.int64), [r[2] for r in kept]

    def _source_rate_hz(self, ts: np.ndarray) -> float | None:
        """The camera's median rate [Hz] (None for a single image); DataError if slower than `fps`."""
        if len(ts) < 2:
            return None
        hz = 1e6 / float(np.median(np.diff(ts)))
        if hz < MIN_SOURCE_RATE_FRACTION * self.s.fps:
            raise DataError(
                f"{self.name}: {self.s.camera} runs at {hz:.2f} Hz, slower than fps={self.s.fps}; "
                f"convert with fps <= {hz:.2f}"
            )
        return hz

    # -- one clip -------------------------------------------------------------------------------
    def _clip(
        self, k: int, seg: FrameSegment, log_row: dict[str, Any], camera: _Camera, tokens: list[bytes],
        source_hz: float | None,
    ) -> Clip:
        s = self.s
        t0, t1 = int(seg.timestamps_us[0]), int(seg.timestamps_us[-1])
        margin = int(round(s.pose_margin_s * 1e6))
        poses, origin = self._poses(t0 - margin, t1 + margin)
        src_h, src_w = seg.source_size_hw
        native = camera.intrinsics or CameraIntrinsics.from_matrix(camera.k_matrix, src_w, src_h)
        if camera.size_wh and abs(camera.size_wh[0] / camera.size_wh[1] - src_w / src_h) > 0.01:
            log.warning("%s: camera.width/height %s and image files (%dx%d) differ in aspect ratio",
                        self.name, camera.size_wh, src_w, src_h)
        objects, lidar_tokens = (None, None)
        if s.with_objects:
            objects, lidar_tokens = self._objects(seg.timestamps_us, np.asarray(origin[:3]))
        provenance: dict[str, Any] = {
            "dataset": "nuPlan",
            "db_file": self.name,
            "log_name": log_row["logfile"],
            "log_token": log_row["token"],
            "vehicle": log_row["vehicle_name"],
            "date": log_row["date"],
            "location": log_row["location"],
            "map_version": log_row["map_version"],
            "camera_channel": camera.channel,
            "camera_model": camera.model,
            "camera_token": token_hex(camera.token),
            "camera_translation_m": camera.translation_m,
            "camera_rotation_wxyz": camera.rotation_wxyz,
            "camera_distortion": camera.distortion,
            "source_image_size_wh": [int(src_w), int(src_h)],
            "source_camera_hz": None if source_hz is None else round(source_hz, 3),
            "image_tokens": [token_hex(tokens[i]) for i in seg.source_indices],
            "scenario_tags": self._scenario_tags(t0, t1),
            "scenes": self._scenes(t0, t1),
        }
        if lidar_tokens is not None:
            provenance["object_lidar_pc_tokens"] = lidar_tokens
        return Clip(
            clip_id=f"{self.db.stem}_{k:03d}",
            source=SOURCE,
            frames=seg.frames,
            frame_timestamps_us=seg.timestamps_us,
            fps=s.fps,
            intrinsics=native.resized(s.width, s.height),
            extrinsics=camera.extrinsics(self.name),
            poses=poses,
            objects=objects,
            origin_global=origin,
            license=log_row["license"],
            provenance=provenance,
        )

    def _poses(self, lo_us: int, hi_us: int) -> tuple[PoseStream, tuple[float, float, float, float]]:
        """Ego poses in [lo_us, hi_us] in the local ENU frame of the first one, and that origin (global)."""
        rows = self.conn.execute(
            "SELECT timestamp, x, y, z, qw, qx, qy, qz FROM ego_pose WHERE timestamp BETWEEN ? AND ? "
            "AND x IS NOT NULL AND y IS NOT NULL AND z IS NOT NULL AND qw IS NOT NULL AND qx IS NOT NULL "
            "AND qy IS NOT NULL AND qz IS NOT NULL ORDER BY timestamp",
            (lo_us, hi_us),
        ).fetchall()
        ts = np.array([r[0] for r in rows], dtype=np.int64)
        vals = np.array([r[1:] for r in rows], dtype=np.float64).reshape(-1, 7)
        quat_norm = np.linalg.norm(vals[:, 3:], axis=1)
        good = np.isfinite(vals).all(axis=1) & (quat_norm > 1e-6)
        if (~good).any():
            log.warning("%s: %d ego poses with non-finite values left out", self.name, int((~good).sum()))
        ts, vals, quat_norm = ts[good], vals[good], quat_norm[good]
        if len(np.unique(ts)) < 2:
            raise EmptySourceError(f"{self.name}: fewer than 2 ego poses between {lo_us} and {hi_us} us")
        xyz = vals[:, :3]
        quat = vals[:, 3:] / quat_norm[:, None]
        yaw = yaw_from_quaternion_wxyz(quat)
        origin = (float(xyz[0, 0]), float(xyz[0, 1]), float(xyz[0, 2]), float(wrap_angle(yaw[0])))
        return PoseStream.from_unsorted(ts, xyz - xyz[0], yaw, quat), origin

    def _objects(self, frame_ts: np.ndarray, origin_xyz: np.ndarray) -> tuple[tuple[FrameObjects, ...], list[str | None]]:
        """Per frame: boxes of the nearest lidar_pc (within the tolerance) that has any, local frame.

        Sweeps without boxes are passed over (nuScenes-derived logs label only keyframe sweeps).
        Returns the objects and, per frame, the hex token of the lidar_pc used (None if none).
        """
        tol = int(round(self.s.object_tolerance_s * 1e6))
        pcs = self.conn.execute(
            "SELECT token, timestamp FROM lidar_pc WHERE timestamp BETWEEN ? AND ? ORDER BY timestamp",
            (int(frame_ts[0]) - tol, int(frame_ts[-1]) + tol),
        ).fetchall()
        pc_ts = np.array([r[1] for r in pcs], dtype=np.int64)
        candidates: list[list[int]] = []
        for t in frame_ts:
            lo, hi = np.searchsorted(pc_ts, t - tol, "left"), np.searchsorted(pc_ts, t + tol, "right")
            candidates.append(sorted(range(lo, hi), key=lambda j: (abs(int(pc_ts[j]) - int(t)), j)))
        boxes_by_pc = self._boxes({pcs[j][0] for c in candidates for j in c})
        out: list[FrameObjects] = []
        used: list[str | None] = []
        for cands in candidates:
            pick = next((j for j in cands if pcs[j][0] in boxes_by_pc), None)
            if pick is None:
                out.append(FrameObjects(np.zeros((0, 7), np.float32), (), ()))
                used.append(None)
                continue
            geometry, categories, tracks = boxes_by_pc[pcs[pick][0]]
            boxes = np.asarray(geometry, dtype=np.float64)
            boxes[:, :3] -= origin_xyz
            boxes[:, 6] = wrap_angle(boxes[:, 6])
            out.append(FrameObjects(boxes.astype(np.float32), tuple(categories), tuple(tracks)))
            used.append(token_hex(pcs[pick][0]))
        return tuple(out), used

    def _boxes(self, pc_tokens: set[bytes]) -> dict[bytes, tuple[list[list[float]], list[str], list[str]]]:
        """lidar_pc token -> ([x, y, z, length, width, height, yaw] global, categories, track ids hex)."""
        if not pc_tokens:
            return {}
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS foresight_lidar_pc (token BLOB PRIMARY KEY)")
        self.conn.execute("DELETE FROM temp.foresight_lidar_pc")
        self.conn.executemany("INSERT INTO temp.foresight_lidar_pc VALUES (?)", [(t,) for t in pc_tokens])
        rows = self.conn.execute(
            "SELECT b.lidar_pc_token, b.x, b.y, b.z, b.length, b.width, b.height, b.yaw, b.track_token, c.name "
            "FROM lidar_box b LEFT JOIN track t ON t.token = b.track_token "
            "LEFT JOIN category c ON c.token = t.category_token "
            "WHERE b.lidar_pc_token IN (SELECT token FROM temp.foresight_lidar_pc)"
        ).fetchall()
        grouped: dict[bytes, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))
        dropped = 0
        for pc, x, y, z, length, width, height, yaw, track, category in rows:
            geometry = [x, y, z, length, width, height, yaw]
            if any(v is None for v in geometry) or not np.isfinite(geometry).all():
                dropped += 1
                continue
            g = grouped[pc]
            g[0].append(geometry)
            g[1].append(category or "unknown")
            g[2].append(token_hex(track) or "")
        if dropped:
            log.warning("%s: %d lidar boxes with missing geometry left out", self.name, dropped)
        return dict(grouped)

    def _scenario_tags(self, t0: int, t1: int) -> dict[str, int]:
        """Scenario tag type -> number of tagged sweeps within [t0, t1]."""
        rows = self.conn.execute(
            "SELECT st.type, count(*) FROM scenario_tag st JOIN lidar_pc lp ON lp.token = st.lidar_pc_token "
            "WHERE lp.timestamp BETWEEN ? AND ? GROUP BY st.type ORDER BY st.type",
            (t0, t1),
        ).fetchall()
        return {str(t): int(n) for t, n in rows if t is not None}

    def _scenes(self, t0: int, t1: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT s.name FROM lidar_pc lp JOIN scene s ON s.token = lp.scene_token "
            "WHERE lp.timestamp BETWEEN ? AND ? ORDER BY s.name",
            (t0, t1),
        ).fetchall()
        return [str(r[0]) for r in rows if r[0] is not None]


def _float_array(value: Any, shape: tuple[int, ...] | None, what: str) -> np.ndarray:
    """Plain unpickled numbers as a finite float64 array of `shape` (any 1-D length if None).

    The nesting is checked against `shape` before numpy sees the value, so a value that would expand
    into a huge array is refused at its first list of the wrong length, having built nothing.
    """
    expected = str(shape) if shape is not None else "(N,)"
    if shape is None:
        if not isinstance(value, (list, tuple)):
            raise DataError(f"{what}: expected shape (N,), got a {type(value).__name__}")
        shape = (len(value),)
    stack: list[tuple[Any, tuple[int, ...]]] = [(value, ())]
    while stack:
        node, index = stack.pop()
        depth = len(index)
        if depth == len(shape):
            if isinstance(node, (list, tuple)):
                raise DataError(f"{what}: expected shape {expected}, got a nested list at {list(index)}")
            if not isinstance(node, (int, float)):
                raise DataError(f"{what}: expected numbers, got a {type(node).__name__} at {list(index)}")
            continue
        if not isinstance(node, (list, tuple)) or len(node) != shape[depth]:
            got = f"a list of {len(node)}" if isinstance(node, (list, tuple)) else f"a {type(node).__name__}"
            raise DataError(f"{what}: expected shape {expected}, got {got} at {list(index)}")
        stack.extend((child, (*index, i)) for i, child in enumerate(node))
    try:
        arr = np.asarray(value, dtype=np.float64)  # now exactly `shape`: at most as many numbers as the blob holds
    except OverflowError as exc:  # an int beyond float64
        raise DataError(f"{what}: a number is out of float64 range: {exc}") from exc
    if not np.isfinite(arr).all():
        raise DataError(f"{what}: contains NaN or inf")
    return arr


def _optional_floats(blob: bytes | None, shape: tuple[int, ...] | None, what: str) -> list[float] | None:
    if blob is None:
        return None
    return _float_array(restricted_loads(blob, what), shape, what).tolist()
