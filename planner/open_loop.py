"""`foresight eval open_loop`: the planner against logged futures, beside constant velocity and the
ego-status-only MLP, on the same windows.

    foresight eval open_loop checkpoint=VAM_DIR clips=HELD_OUT_CLIPS out=DIR [samples=10]

Protocol (also written into metrics.json):
  windows: every frame of every clip with ego poses whose logged future covers the whole horizon
    (K waypoints, 3 s at 2 Hz); the observed frames are the newest n on the model's frame grid, the
    oldest repeated at the start of a clip (as in closed loop); frames are resized (no crop) to the
    tokenizer's input size and encoded with the checkpoint's tokenizer;
  min_ade / min_fde [m]: over `samples` (k = 10) plans per window, the smallest mean / final
    Euclidean (x, y) error against the logged future, averaged over windows; deterministic planners
    (constant velocity, ego MLP) have one plan, so theirs are plain ADE / FDE;
  l2_1s / l2_2s / l2_3s [m]: error of the executed plan (what the closed-loop planner would
    drive: sample 0, or the checkpoint's aggregate of the k samples, e.g. their medoid) at the
    waypoint 1 / 2 / 3 s ahead (that waypoint only, UniAD convention), averaged over windows;
  collision_rate: share of windows (of clips with logged boxes) where the executed plan's ego footprint (nuPlan
    Pacifica box around the rear-axle waypoint, heading along the plan) at a waypoint overlaps a logged
    box of the frame at that time (no box is moved: the logged world); "log" is the logged future
    itself, the floor of this measure (parked objects brushed by the real ego count too).
constant_velocity keeps the current speed straight ahead (the NeuroNCAP no-reaction reference).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from contract.footprint import box_corners, convex_overlap
from contract.vehicle import PACIFICA, VehicleParameters
from data.image import resize_rgb
from data.store.manifest import atomic_write_text
from data.store.reader import ClipStore
from planner.action_model.checkpoint import load_vam_export
from planner.action_model.metrics import open_loop_metrics
from planner.action_model.model import VideoActionModel
from planner.action_model.sampling import sample_plans
from planner.batch import planner_loader
from planner.datamodule import PlannerWindowDataset, PlannerWindowSpec
from planner.ego_mlp import EgoMLP
from planner.inference import aggregate_samples

HORIZONS_S = (1.0, 2.0, 3.0)
METRIC_NAMES = ("min_ade", "min_fde", "l2_1s", "l2_2s", "l2_3s")
PROTOCOL = (
    "windows: every frame with a full logged 3 s future (oldest frames repeated at clip start); "
    "min_ade/min_fde [m]: best of k samples (deterministic planners: 1), mean over windows; "
    "l2_Ns [m]: the executed plan (sample 0 or the checkpoint's aggregate of the k samples) at the waypoint N s ahead, "
    "mean over windows; collision_rate: share of windows whose executed-plan ego footprint overlaps a logged box at a "
    "waypoint time; constant_velocity: current speed straight ahead"
)


class EncodedClips:
    """A token source (see `planner.datamodule.TokenSource`) made by encoding every frame of a clip
    store with an image tokenizer, resized (no crop) to `image_hw` when the store differs."""

    def __init__(self, clips: ClipStore, tokenizer: Any, image_hw: tuple[int, int], batch_size: int = 32) -> None:
        from world_model.tokenizer.pixels import frames_to_images

        self.root = clips.root
        self._meta: list[dict[str, Any]] = []
        self._tokens: list[np.ndarray] = []
        device = next(tokenizer.parameters()).device if isinstance(tokenizer, torch.nn.Module) else torch.device("cpu")
        for ci in range(len(clips)):
            frames = clips.load_frames(ci)  # (T, H, W, 3) uint8
            if frames.shape[1:3] != tuple(image_hw):
                frames = np.stack([resize_rgb(f, *image_hw) for f in frames])
            grids = []
            with torch.no_grad():
                for start in range(0, len(frames), batch_size):
                    images = frames_to_images(torch.from_numpy(frames[start : start + batch_size]).to(device))
                    grids.append(tokenizer.encode(images).indices.cpu().numpy().astype(np.uint16))
            meta = clips.meta(ci)
            self._meta.append({"clip_index": ci, "clip_id": meta["clip_id"], "fps": meta["fps"], "num_frames": len(frames)})
            self._tokens.append(np.concatenate(grids))

    def __len__(self) -> int:
        return len(self._meta)

    def meta(self, index: int) -> dict[str, Any]:
        return self._meta[index]

    def clip_tokens(self, index: int) -> np.ndarray:
        return self._tokens[index]


@dataclass(frozen=True)
class LoggedBoxes:
    """Boxes of one clip: frame_times_us (T,) int64; boxes (one (M_t, 7) [x, y, z, l, w, h, yaw] array
    per frame, clip-local frame)."""

    frame_times_us: np.ndarray
    boxes: tuple[np.ndarray, ...]


def logged_boxes(clips: ClipStore, clip_index: int) -> LoggedBoxes | None:
    """The clip's per-frame boxes, or None when the clip has no object labels."""
    clip = clips.load_clip(clip_index)
    if clip.objects is None:
        return None
    return LoggedBoxes(np.asarray(clip.frame_timestamps_us), tuple(np.asarray(o.boxes, dtype=np.float64) for o in clip.objects))


def plan_headings(plan_xy: np.ndarray) -> np.ndarray:
    """(K,) [rad] heading of each waypoint of a plan (K, 2) [m] from the ego (0, 0, heading 0):
    the direction of the step into it; a step shorter than 5 cm keeps the previous heading."""
    steps = np.diff(np.vstack([np.zeros((1, 2)), plan_xy]), axis=0)
    headings = np.empty(len(plan_xy))
    previous = 0.0
    for k, (dx, dy) in enumerate(steps):
        if math.hypot(dx, dy) > 0.05:
            previous = math.atan2(dy, dx)
        headings[k] = previous
    return headings


def plan_collides(plan_xy: np.ndarray, boxes_ego: list[np.ndarray | None], vehicle: VehicleParameters = PACIFICA) -> bool:
    """Whether the ego footprint along a plan (K, 2) [m, ego frame, rear axle] overlaps any box of
    boxes_ego[k] ((M, 7) in the ego frame, or None when no frame matches waypoint k)."""
    headings = plan_headings(plan_xy)
    offset = 0.5 * (vehicle.rear_axle_to_front_m - vehicle.rear_axle_to_rear_m)  # rear axle -> box centre
    for k, boxes in enumerate(boxes_ego):
        if boxes is None or not len(boxes):
            continue
        centre = np.array([plan_xy[k, 0] + offset * math.cos(headings[k]), plan_xy[k, 1] + offset * math.sin(headings[k]), headings[k]])
        ego = box_corners(centre, vehicle.length_m, vehicle.width_m)  # (4, 2)
        others = box_corners(boxes[:, [0, 1, 6]], boxes[:, 3], boxes[:, 4])  # (M, 4, 2)
        if convex_overlap(ego[None], others).any():
            return True
    return False


class CollisionChecker:
    """Looks up the logged boxes at a window's waypoint times, in the window's ego frame."""

    def __init__(self, clips: ClipStore, waypoint_dt_s: float, num_waypoints: int, tolerance_s: float = 0.05) -> None:
        self.clips = clips
        self.offsets_us = np.round(waypoint_dt_s * np.arange(1, num_waypoints + 1) * 1e6).astype(np.int64)
        self.tolerance_us = int(tolerance_s * 1e6)
        self._boxes: dict[int, LoggedBoxes | None] = {}
        self._poses: dict[int, Any] = {}

    def boxes_along(self, clip_index: int, frame_index: int) -> list[np.ndarray | None] | None:
        """Per waypoint: the boxes (M, 7) at that time in the ego frame at the window's frame (None
        where no frame is within tolerance); None when the clip has no boxes."""
        if clip_index not in self._boxes:
            self._boxes[clip_index] = logged_boxes(self.clips, clip_index)
            self._poses[clip_index] = self.clips.pose_stream(clip_index)
        logged, poses = self._boxes[clip_index], self._poses[clip_index]
        if logged is None or poses is None:
            return None
        t0 = int(logged.frame_times_us[frame_index])
        x0, y0, _, yaw0 = poses.pose_at(t0)
        cos, sin = math.cos(yaw0), math.sin(yaw0)
        out: list[np.ndarray | None] = []
        for offset in self.offsets_us:
            gap = np.abs(logged.frame_times_us - (t0 + offset))
            f = int(gap.argmin())
            if gap[f] > self.tolerance_us:
                out.append(None)
                continue
            b = logged.boxes[f].copy()
            dx, dy = b[:, 0] - x0, b[:, 1] - y0
            b[:, 0], b[:, 1], b[:, 6] = cos * dx + sin * dy, -sin * dx + cos * dy, b[:, 6] - yaw0
            out.append(b)
        return out


def constant_velocity_xy(speed_mps: torch.Tensor, num_waypoints: int, dt_s: float) -> torch.Tensor:
    """(B, 1, K, 2) [m]: straight ahead at the current speed (negative speeds stand still)."""
    times = dt_s * torch.arange(1, num_waypoints + 1, dtype=torch.float32, device=speed_mps.device)
    x = speed_mps.float().clamp(min=0.0)[:, None] * times  # (B, K)
    return torch.stack([x, torch.zeros_like(x)], dim=-1)[:, None]


class _Accumulator:
    """Count-weighted means of metrics over batches."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, mean: float, count: int) -> None:
        if count:
            self.sums[name] = self.sums.get(name, 0.0) + mean * count
            self.counts[name] = self.counts.get(name, 0) + count

    def result(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {name: (self.sums[name] / self.counts[name] if name in self.counts else None) for name in self.sums}
        return out


@torch.no_grad()
def evaluate_windows(
    model: VideoActionModel | None,
    ego_mlp: EgoMLP | None,
    dataset: Dataset,
    n_samples: int = 10,
    n_steps: int = 10,
    solver: str = "euler",
    seed: int = 0,
    batch_size: int = 32,
    collisions: CollisionChecker | None = None,
    aggregate: str = "first",
) -> dict[str, dict[str, float | int | None]]:
    """Open-loop metrics of the action model (`model`, k = n_samples; the executed plan is the
    `aggregate` of its samples), the ego MLP and constant velocity on the same windows (see the
    module docstring). Returns {planner: {metric: value, "n_windows": N}}; with `collisions`, also
    collision_rate per planner and for the log."""
    if n_samples < 1:
        raise ValueError(f"evaluate_windows: n_samples must be >= 1, got {n_samples}")
    generator = torch.Generator().manual_seed(seed)
    names = ["vam"] if model is not None else []
    names += ["ego_mlp"] if ego_mlp is not None else []
    names += ["constant_velocity"]
    acc = {name: _Accumulator() for name in names + ["log"]}
    n_windows = 0
    device = next(model.expert.parameters()).device if model is not None else torch.device("cpu")
    for batch in planner_loader(dataset, batch_size):
        target = batch.trajectory[..., :2].float()
        valid = batch.trajectory_valid.bool()
        k, dt = target.shape[1], None
        plans: dict[str, torch.Tensor] = {}
        if model is not None:
            dt = model.config.waypoint_dt_s
            plans["vam"] = sample_plans(model, batch.to(device), n_samples, n_steps, solver, generator).float().cpu()
        if ego_mlp is not None:
            dt = ego_mlp.config.features.waypoint_dt_s
            plans["ego_mlp"] = ego_mlp.plan_windows(batch).float()[:, None]
        dt = dt if dt is not None else 0.5
        plans["constant_velocity"] = constant_velocity_xy(batch.speed_mps, k, dt)
        n_windows += len(target)
        executed = {name: aggregate_samples(samples, aggregate if name == "vam" else "first") for name, samples in plans.items()}  # (B, K, 2)
        for name, samples in plans.items():
            best_of_k = open_loop_metrics(samples, target, valid, dt, HORIZONS_S)
            at_horizons = open_loop_metrics(executed[name][:, None], target, valid, dt, HORIZONS_S)
            for metric, value in best_of_k.items():
                value = at_horizons[metric] if metric.startswith("l2_") else value
                acc[name].add(metric, float(value.mean), value.count)
        if collisions is not None:
            for b in range(len(target)):
                boxes = collisions.boxes_along(int(batch.clip_index[b]), int(batch.frame_index[b]))
                if boxes is None:
                    continue
                keep = valid[b].numpy()
                boxes = [x if keep[i] else None for i, x in enumerate(boxes)]
                acc["log"].add("collision_rate", float(plan_collides(target[b].numpy(), boxes)), 1)
                for name, plan in executed.items():
                    acc[name].add("collision_rate", float(plan_collides(plan[b].numpy(), boxes)), 1)
    results = {}
    for name in names + ["log"]:
        row = acc[name].result()
        if name == "log" and not row:
            continue
        row["n_windows"] = n_windows
        results[name] = row
    return results


def planner_windows(model: VideoActionModel, tokenizer: Any, frame_period_s: float, clips: ClipStore, device: torch.device | str = "cpu") -> PlannerWindowDataset:
    """Every evaluable window of `clips` for `model` (the protocol above): its observed frames on the
    model's frame grid (every frame_period_s [s], the start padded), encoded with `tokenizer` when
    the model uses video, and the labels (trajectory, command, ego status)."""
    c = model.config
    spec = PlannerWindowSpec(
        n_observed_frames=model.n_observed_frames,
        frame_period_s=frame_period_s,
        num_waypoints=c.num_waypoints,
        waypoint_dt_s=c.waypoint_dt_s,
        history_steps=c.ego_history_steps,
        history_dt_s=c.ego_history_dt_s,
        pad_start=True,
        min_valid_waypoints=c.num_waypoints,
        route_path=c.uses_route,
    )
    tokens = None
    if c.uses_video:
        tokenizer = tokenizer.to(device).eval()
        wm = model.world_model_config
        factor = int(tokenizer.downsample_factor)
        tokens = EncodedClips(clips, tokenizer, (wm.tokens_h * factor, wm.tokens_w * factor))
    return PlannerWindowDataset(clips, tokens, spec)


def run_eval_open_loop(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate `cfg.checkpoint` (a VAM export directory) on `cfg.clips`; writes out/metrics.json."""
    from planner.ego_mlp import has_ego_mlp, load_ego_mlp

    checkpoint, clips_path, out = cfg["checkpoint"], cfg["clips"], Path(cfg["out"])
    export = load_vam_export(checkpoint, cfg["tokenizer"])
    recorded = export.inference
    n_samples = int(cfg["samples"])
    solver = str(cfg["solver"] or recorded.solver)
    n_steps = int(cfg["n_steps"] or recorded.n_steps)
    aggregate = str(cfg["aggregate"] or recorded.aggregate)
    seed, batch_size = int(cfg["seed"]), int(cfg["batch_size"])
    device = torch.device(str(cfg["device"]))
    model = export.model.to(device).eval()
    ego_mlp = load_ego_mlp(checkpoint) if has_ego_mlp(checkpoint) else None
    clips = ClipStore(clips_path)
    dataset = planner_windows(model, export.tokenizer, export.frame_period_s, clips, device)
    n_all, skipped_unlabelled = len(dataset), dataset.skipped_unlabelled
    max_windows = cfg["max_windows"]
    if max_windows is not None and n_all > int(max_windows):  # evenly spaced over the clips, the same every run
        dataset = Subset(dataset, np.unique(np.linspace(0, n_all - 1, int(max_windows)).round().astype(np.int64)).tolist())
    c = model.config
    checker = CollisionChecker(clips, c.waypoint_dt_s, c.num_waypoints)
    results = evaluate_windows(model, ego_mlp, dataset, n_samples, n_steps, solver, seed, batch_size, checker, aggregate)
    metrics = {
        "open_loop": results,
        "protocol": PROTOCOL,
        "samples": n_samples,
        "n_steps": n_steps,
        "solver": solver,
        "aggregate": aggregate,
        "seed": seed,
        "checkpoint": str(Path(checkpoint).resolve()),
        "clips": str(Path(clips_path).resolve()),
        "n_windows": len(dataset),
        "n_windows_available": n_all,
        "n_clips": len(clips),
        "clips_without_poses": skipped_unlabelled,
        "video_mode": c.video_mode,
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1, allow_nan=False))
    rows = [f"{name:<18} " + " ".join(f"{m}={_fmt(v.get(m))}" for m in (*METRIC_NAMES, "collision_rate")) for name, v in results.items() if name != "log"]
    print(f"open loop on {clips_path} ({len(dataset)} windows, k={n_samples}):\n" + "\n".join(rows) + f"\nwrote {out / 'metrics.json'}")
    return metrics


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"
