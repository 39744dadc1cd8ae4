"""`foresight viz clip`: a PNG strip of a clip's frames beside its bird's-eye-view trajectory."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from data.command import Command
from data.ego_motion import to_ego_frame
from data.schema import Clip
from data.store.reader import ClipStore

COMMAND_COLORS = {Command.RIGHT: (230, 120, 40), Command.LEFT: (60, 140, 230), Command.STRAIGHT: (90, 200, 90)}


def _label(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def bev_panel(clip: Clip, frame_index: int, horizon_s: float, dt_s: float, size_px: int) -> np.ndarray:
    """(size_px, size_px, 3) uint8 top-down view in the ego frame at `frame_index` (x forward = up).

    Grey: the whole driven path; coloured dots: the future trajectory over `horizon_s`; boxes: the
    frame's annotated objects when the clip has them. Scale fits the path, at least 40 m across.
    """
    img = np.full((size_px, size_px, 3), 245, np.uint8)
    if not clip.has_poses:
        _label(img, "unlabeled: no ego poses", (10, size_px // 2))
        return img
    poses = clip.poses
    t0 = int(clip.frame_timestamps_us[frame_index])
    origin = poses.pose_at(t0)[[0, 1, 3]]
    path = to_ego_frame(origin, np.c_[poses.xyz_m[:, :2], poses.yaw_rad])[:, :2]
    fut = clip.trajectory(frame_index, horizon_s, dt_s)
    extent = max(40.0, 2.2 * float(np.abs(path).max()))
    scale = size_px / extent

    def px(xy: np.ndarray) -> np.ndarray:  # ego frame (x fwd, y left) -> image (col right, row down)
        xy = np.atleast_2d(xy)
        return np.stack([size_px / 2 - xy[:, 1] * scale, size_px / 2 - xy[:, 0] * scale], axis=1).round().astype(np.int32)

    for r in np.arange(-extent, extent, 10.0):  # 10 m grid
        p = int(size_px / 2 + r * scale)
        cv2.line(img, (p, 0), (p, size_px), (225, 225, 225), 1)
        cv2.line(img, (0, p), (size_px, p), (225, 225, 225), 1)
    cv2.polylines(img, [px(path)], False, (150, 150, 150), 2, cv2.LINE_AA)
    if clip.objects is not None:
        for box in clip.objects[frame_index].boxes:
            local = to_ego_frame(origin, np.array([box[0], box[1], box[6]]))
            c, s = np.cos(local[2]), np.sin(local[2])
            corners = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * (box[3] / 2, box[4] / 2)
            world = corners @ np.array([[c, s], [-s, c]]) + local[:2]
            cv2.polylines(img, [px(world)], True, (120, 90, 200), 1, cv2.LINE_AA)
    cmd = Command(int(clip.commands[frame_index]))
    color = COMMAND_COLORS[cmd]
    for (x, y, _), ok in zip(fut.poses, fut.valid):
        cv2.circle(img, tuple(px(np.array([x, y]))[0]), 4, color if ok else (200, 200, 200), -1, cv2.LINE_AA)
    ego = np.array([[2.4, 0.0], [-1.0, 1.0], [-1.0, -1.0]])
    cv2.fillPoly(img, [px(ego)], (20, 20, 20), cv2.LINE_AA)
    speed = float(poses.speed_at(t0))
    _label(img, f"{cmd.name}  {speed:.1f} m/s  ({horizon_s:g} s ahead)", (8, 18))
    _label(img, "grid 10 m", (8, size_px - 8))
    return img


def clip_strip(clip: Clip, max_frames: int, horizon_s: float, dt_s: float, frame_height: int) -> np.ndarray:
    """(H, W, 3) uint8: up to `max_frames` evenly spaced thumbnails, then the BEV panel of the first."""
    n = clip.num_frames
    picks = np.unique(np.linspace(0, n - 1, min(max_frames, n)).round().astype(int))
    h, w = clip.image_size
    thumb_w = max(1, round(w * frame_height / h))
    thumbs = []
    t_first = clip.frame_timestamps_us[picks[0]]
    for i in picks:
        t = cv2.resize(clip.frames[i], (thumb_w, frame_height), interpolation=cv2.INTER_AREA)
        label = f"#{i} t={(clip.frame_timestamps_us[i] - t_first) * 1e-6:.1f}s"
        if clip.commands is not None:
            label += f" {Command(int(clip.commands[i])).name}"
        _label(t, label, (4, 14), 0.4)
        thumbs.append(t)
    rows = [np.concatenate(thumbs[a : a + 4], axis=1) for a in range(0, len(thumbs), 4)]
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    size = max(grid.shape[0], 2 * frame_height)
    panel = bev_panel(clip, int(picks[0]), horizon_s, dt_s, size)
    grid = np.pad(grid, ((0, size - grid.shape[0]), (0, 0), (0, 0)), constant_values=255)
    return np.concatenate([grid, np.full((grid.shape[0], 6, 3), 255, np.uint8), panel], axis=1)


def run(cfg) -> Path:
    store = ClipStore(cfg.path)
    if not 0 <= cfg.index < len(store):
        raise IndexError(f"clip index {cfg.index} out of range: {cfg.path} holds {len(store)} clips")
    clip = store.load_clip(int(cfg.index))
    strip = clip_strip(clip, int(cfg.max_frames), float(cfg.horizon_s), float(cfg.dt_s), int(cfg.frame_height))
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {out}")
    print(f"wrote {out} ({strip.shape[1]}x{strip.shape[0]}) for clip {clip.clip_id}")
    return out
