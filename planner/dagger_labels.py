"""The expert's plans that label DAgger clips, kept beside the clip store (one file per clip).

A DAgger clip records where the rolled-out planner actually drove; its training target at frame t
is not the clip's own future but the privileged expert's plan from the state visited at t. Those
plans live in `STORE/expert_labels/<clip_id>.npz` (written before the clip's shard, so a listed
clip always has its labels): plans_xyyaw (T, K, 3) float32 [m, m, rad] in the ego frame at each
frame, frame_timestamps_us (T,) int64 (the clip's, to check they belong together),
waypoint_dt_s [s], the spacing of the K waypoints, and route_path_xy (T, M, 2) float32 [m], the
scenario's route ahead at each frame in the ego frame (data.route_points.route_path of what the
closed loop hands the planner). A DAgger clip's route is the scenario's, not the path the planner
drove (which is where it went astray); labels from before it was recorded have none.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.store.manifest import atomic_write_bytes

LABELS_DIR = "expert_labels"


@dataclass(frozen=True)
class ExpertPlanLabels:
    """The expert's plan at every frame of one clip (see the module docstring)."""

    plans_xyyaw: np.ndarray  # (T, K, 3) float32 [m, m, rad]
    frame_timestamps_us: np.ndarray  # (T,) int64
    waypoint_dt_s: float
    route_path_xy: np.ndarray | None = None  # (T, M, 2) float32 [m]

    def __post_init__(self) -> None:
        plans = np.asarray(self.plans_xyyaw, dtype=np.float32)
        times = np.asarray(self.frame_timestamps_us, dtype=np.int64)
        if plans.ndim != 3 or plans.shape[2] != 3 or plans.shape[0] != len(times) or not np.isfinite(plans).all():
            raise ValueError(f"expert labels: plans_xyyaw must be finite (T, K, 3) for {len(times)} frames, got {plans.shape}")
        if not self.waypoint_dt_s > 0:
            raise ValueError(f"expert labels: waypoint_dt_s must be > 0, got {self.waypoint_dt_s}")
        object.__setattr__(self, "plans_xyyaw", plans)
        object.__setattr__(self, "frame_timestamps_us", times)
        object.__setattr__(self, "waypoint_dt_s", float(self.waypoint_dt_s))
        if self.route_path_xy is not None:
            route = np.asarray(self.route_path_xy, dtype=np.float32)
            if route.ndim != 3 or route.shape[0] != len(times) or route.shape[2] != 2 or not np.isfinite(route).all():
                raise ValueError(f"expert labels: route_path_xy must be finite (T, M, 2) for {len(times)} frames, got {route.shape}")
            object.__setattr__(self, "route_path_xy", route)

    @property
    def num_waypoints(self) -> int:
        return int(self.plans_xyyaw.shape[1])


def _file_name(clip_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", clip_id):
        raise ValueError(f"expert labels: clip id {clip_id!r} is not a safe file name")
    return f"{clip_id}.npz"


def write_labels(store_dir: str | Path, clip_id: str, labels: ExpertPlanLabels) -> Path:
    """Write (atomically) the labels of clip `clip_id` of the store at `store_dir`."""
    path = Path(store_dir) / LABELS_DIR / _file_name(clip_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    route = {} if labels.route_path_xy is None else {"route_path_xy": labels.route_path_xy}
    np.savez(buffer, plans_xyyaw=labels.plans_xyyaw, frame_timestamps_us=labels.frame_timestamps_us,
             waypoint_dt_s=np.float64(labels.waypoint_dt_s), **route)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def has_labels(store_dir: str | Path) -> bool:
    """True when the store at `store_dir` carries expert labels (a DAgger store)."""
    return (Path(store_dir) / LABELS_DIR).is_dir()


def read_labels(store_dir: str | Path, clip_id: str) -> ExpertPlanLabels:
    """The labels of clip `clip_id`; a clear error when the store has none for it."""
    path = Path(store_dir) / LABELS_DIR / _file_name(clip_id)
    if not path.is_file():
        raise ValueError(f"{store_dir}: clip {clip_id!r} has no expert labels ({path} is missing)")
    with np.load(path, allow_pickle=False) as f:
        route = f["route_path_xy"] if "route_path_xy" in f.files else None
        return ExpertPlanLabels(f["plans_xyyaw"], f["frame_timestamps_us"], float(f["waypoint_dt_s"]), route)
