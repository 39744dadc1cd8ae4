"""Planner training windows: cached image tokens joined with the labels of the clips they came from.

A window ends at a "current" frame j of a clip: the observed tokens are frames j - (n-1) .. j on the
model's frame grid (every `frame_period_s`), the labels are the clip's future trajectory after frame
j (in the ego frame at j), its command at j, and the ego status at j (speed, acceleration, yaw rate
and the past poses at -k * history_dt_s, k = P-1..0). Windows near the start of a clip (j < n - 1)
repeat the oldest frame, as the closed-loop planner does at the start of an episode; the past poses
before the clip's first pose are extrapolated backwards at the current speed, by the same function
the planner uses (`past_poses_at`), so training and closed loop see the same ego status.

DAgger clips (planner/dagger*.py) are labelled differently: their target at frame j is the
privileged expert's plan from the state the rolled-out planner visited at j (`expert_labels=True`,
read from the store's planner/dagger_labels.py files), not where that planner went next.

The token store must have been made from the clip store (`meta(i)["clip_index"]` indexes it, and
the clip ids must match). Everything but the tokens is computed once in the constructor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from contract import world_to_ego
from data.ego_motion import EGO_STATUS_HALF_WINDOW_S
from data.route_points import route_path
from data.schema import FutureTrajectory, future_trajectory
from data.store.reader import ClipStore
from planner.action_model.ego_status import past_poses_at
from planner.batch import PlannerBatch
from planner.dagger_labels import ExpertPlanLabels, read_labels
from world_model.tokens.reader import TokenStore


@dataclass(frozen=True)
class PlannerWindowSpec:
    """n_observed_frames: frames the model sees (current last); n_future_frames: true next frames
    returned as "future_tokens" (imagine-mode teacher forcing; windows without them are dropped);
    frame_period_s: spacing of the model's frames [s]; num_waypoints every waypoint_dt_s [s];
    history_steps past poses every history_dt_s [s]; pad_start: also make windows whose first
    frames precede the clip (oldest frame repeated); min_valid_waypoints: drop windows whose logged
    future is shorter; skip_perturbed: drop windows whose labelled future (now .. now + K dt)
    overlaps an interval in which the recording expert was deliberately perturbed (synthetic clips'
    provenance `perturbed_intervals_us`): their future shows the injected offset, not a choice;
    route_path: each window carries the route ahead resampled by data.route_points.route_path, for
    models that read the route: a log's is the path driven from now on (as for its command), a DAgger
    clip's the scenario route its labels recorded (planner/dagger_labels.py)."""

    n_observed_frames: int = 4
    n_future_frames: int = 0
    frame_period_s: float = 0.5
    num_waypoints: int = 6
    waypoint_dt_s: float = 0.5
    history_steps: int = 3
    history_dt_s: float = 0.5
    pad_start: bool = True
    min_valid_waypoints: int = 1
    skip_perturbed: bool = True
    route_path: bool = False

    def __post_init__(self) -> None:
        for name in ("n_observed_frames", "num_waypoints", "history_steps", "min_valid_waypoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"PlannerWindowSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_future_frames < 0:
            raise ValueError(f"PlannerWindowSpec.n_future_frames must be >= 0, got {self.n_future_frames}")
        for name in ("frame_period_s", "waypoint_dt_s", "history_dt_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PlannerWindowSpec.{name} must be > 0, got {getattr(self, name)}")
        if self.min_valid_waypoints > self.num_waypoints:
            raise ValueError(f"PlannerWindowSpec.min_valid_waypoints ({self.min_valid_waypoints}) exceeds num_waypoints ({self.num_waypoints})")

    @property
    def history_times_s(self) -> np.ndarray:
        """(P,) [s] times of the past poses relative to now, oldest first, ending at 0."""
        return -self.history_dt_s * np.arange(self.history_steps, -1, -1, dtype=np.float64)


@dataclass(frozen=True)
class WindowLabels:
    """Labels of one window at its current frame (see the module docstring); shapes per window."""

    trajectory: np.ndarray  # (K, 3) float32 [m, m, rad] future poses in the current ego frame
    trajectory_valid: np.ndarray  # (K,) bool
    command: int
    speed_mps: float
    accel_mps2: float
    yaw_rate_rps: float
    past_poses: np.ndarray  # (P, 3) float32 [m, m, rad] at history_times_s
    route_path: np.ndarray  # (M, 2) float32 [m] the route ahead every ROUTE_PATH_STEP_M, ego frame ((0, 2) without)


def window_labels(store: ClipStore, clip_index: int, frame_index: int, spec: PlannerWindowSpec) -> WindowLabels | None:
    """Labels at frame `frame_index` of clip `clip_index`, or None when the clip has no poses."""
    poses = store.pose_stream(clip_index)
    commands = store.commands(clip_index)
    if poses is None or commands is None:
        return None
    t0 = int(store.frame_timestamps_us(clip_index)[frame_index])
    future = future_trajectory(poses, t0, spec.num_waypoints * spec.waypoint_dt_s, spec.waypoint_dt_s)
    return _labels_at(poses, t0, int(commands[frame_index]), future, spec)


def _labels_at(poses, t0_us: int, command: int, future, spec: PlannerWindowSpec, route: np.ndarray | None = None) -> WindowLabels:
    """route: (M, 2) the route ahead when the clip records it (DAgger); None: the driven path."""
    # The ego status from the poses up to t0 only (data/ego_motion.py): a central difference would
    # hand the planner the first half second of the future it predicts, which closed loop never has.
    speed = float(poses.speed_at(t0_us, EGO_STATUS_HALF_WINDOW_S, past_only=True))
    # Known past poses: the logged stream between its start and now, at the history grid (as the
    # simulator's history), extended before the log by constant-speed extrapolation.
    grid_us = t0_us + np.round(spec.history_times_s * 1e6).astype(np.int64)
    known = grid_us >= poses.start_us
    known_times = spec.history_times_s[known]
    known_poses = poses.in_ego_frame(t0_us, grid_us[known])  # (P', 3)
    past = past_poses_at(
        torch.from_numpy(known_times)[None], torch.from_numpy(known_poses)[None],
        torch.from_numpy(spec.history_times_s), torch.tensor([speed], dtype=torch.float64),
    )[0].numpy()
    return WindowLabels(
        trajectory=future.poses.astype(np.float32),
        trajectory_valid=future.valid.astype(bool),
        command=command,
        speed_mps=speed,
        accel_mps2=float(poses.accel_lon_at(t0_us, EGO_STATUS_HALF_WINDOW_S, past_only=True)),
        yaw_rate_rps=float(poses.yaw_rate_at(t0_us, EGO_STATUS_HALF_WINDOW_S, past_only=True)),
        past_poses=past.astype(np.float32),
        route_path=(_route_path(poses, t0_us) if route is None else route.astype(np.float32)) if spec.route_path
        else np.zeros((0, 2), np.float32),
    )


def _route_path(poses, t0_us: int) -> np.ndarray:
    """(M, 2) float32 the driven path from t0 on (the route a log implies, as for its command),
    resampled by data.route_points.route_path, in the ego frame at t0."""
    here = poses.pose_at(t0_us)[[0, 1, 3]]  # x, y, yaw
    return route_path(world_to_ego(poses.future_path_xy(t0_us), here)).astype(np.float32)


def _perturbed_intervals_us(meta: dict[str, Any]) -> np.ndarray:
    """(N, 2) int64 [us] [start, end) of the recording expert's perturbations (none: (0, 2))."""
    intervals = (meta.get("provenance") or {}).get("perturbed_intervals_us") or []
    out = np.asarray(intervals, dtype=np.int64).reshape(-1, 2)
    if np.any(out[:, 1] < out[:, 0]):
        raise ValueError(f"clip {meta.get('clip_id')!r}: perturbed_intervals_us must be [start, end] pairs with end >= start")
    return out


def _frame_step(clip_fps: float, frame_period_s: float, clip_id: str) -> int:
    ratio = clip_fps * frame_period_s
    step = int(round(ratio))
    if step < 1 or abs(ratio - step) > 0.01 * ratio:
        raise ValueError(
            f"clip {clip_id} is stored at {clip_fps} fps; the planner's frames every {frame_period_s} s need an integer "
            f"multiple of {1 / frame_period_s:g} fps"
        )
    return step


class TokenSource(Protocol):
    """What the dataset needs of a token store (world_model.tokens.TokenStore satisfies it): len,
    root, meta(i) with clip_index / clip_id / fps / num_frames, clip_tokens(i) (T, h, w) integers."""

    root: Path

    def __len__(self) -> int: ...

    def meta(self, index: int) -> dict[str, Any]: ...

    def clip_tokens(self, index: int) -> np.ndarray: ...


class PlannerWindowDataset(Dataset):
    """Windows over every labelled clip of a token source (see the module docstring).

    clips: the clip store the tokens were made from; tokens: a token store (path or object) or None
    for labels only (no "tokens" key; for no-video models and baselines); clip_subset: positions in
    the token source (or the clip store) to use (None = all); expert_labels: the targets are the
    expert's plans stored beside the clips (DAgger stores), every waypoint valid. Item: one window as a
    `planner.batch.PlannerBatch` without the batch dimension (batch them with `planner_loader`);
    future_tokens only when spec.n_future_frames > 0, tokens only with a token source.
    """

    def __init__(self, clips: ClipStore | str | Path, tokens: "TokenSource | str | Path | None", spec: PlannerWindowSpec = PlannerWindowSpec(),
                 clip_subset: list[int] | None = None, expert_labels: bool = False) -> None:
        self.clips = clips if isinstance(clips, ClipStore) else ClipStore(clips)
        self.expert_labels = expert_labels
        self.tokens = TokenStore(tokens) if isinstance(tokens, (str, Path)) else tokens
        self.spec = spec
        self.skipped_unlabelled: list[str] = []
        self.skipped_perturbed = 0  # windows left out by spec.skip_perturbed
        self._tokens: list[np.ndarray | None] = []  # per used clip: (T, h, w) uint16 in memory (None: labels only)
        self._index: list[tuple[int, int, int]] = []  # (used clip, current frame, frame step)
        self._labels: list[WindowLabels] = []
        self._clip_index: list[int] = []
        n_sources = len(self.clips) if self.tokens is None else len(self.tokens)
        for pos in range(n_sources) if clip_subset is None else clip_subset:
            self._add_clip(pos)
        if not self._index:
            source = "labels only" if self.tokens is None else f"tokens {self.tokens.root}"
            raise ValueError(f"clip store {self.clips.root} ({source}) gives no planner windows "
                             f"({len(self.skipped_unlabelled)} clips without poses, {self.skipped_perturbed} windows left out because their "
                             f"future overlaps a perturbation of the recording expert, spec {spec})")

    def _meta(self, pos: int) -> dict:
        if self.tokens is None:
            meta = self.clips.meta(pos)
            return {"clip_index": pos, "clip_id": meta["clip_id"], "fps": meta["fps"], "num_frames": self.clips.refs[pos].num_frames}
        return self.tokens.meta(pos)

    def _add_clip(self, pos: int) -> None:
        meta = self._meta(pos)
        ci = int(meta["clip_index"])
        if ci >= len(self.clips) or self.clips.refs[ci].clip_id != meta["clip_id"]:
            raise ValueError(f"token store {self.tokens.root}: clip {meta['clip_id']!r} (clip_index {ci}) is not clip {ci} of "
                             f"{self.clips.root}; pass the clip store the tokens were made from")
        poses, commands = self.clips.pose_stream(ci), self.clips.commands(ci)
        if poses is None or commands is None:
            self.skipped_unlabelled.append(meta["clip_id"])
            return
        s = self.spec
        step = _frame_step(float(meta["fps"]), s.frame_period_s, meta["clip_id"])
        n_frames = int(meta["num_frames"])
        first = 0 if s.pad_start else (s.n_observed_frames - 1) * step
        last = n_frames - 1 - s.n_future_frames * step
        frame_us = self.clips.frame_timestamps_us(ci)
        perturbed = _perturbed_intervals_us(self.clips.meta(ci)) if s.skip_perturbed else np.zeros((0, 2), np.int64)
        horizon_us = int(round(s.num_waypoints * s.waypoint_dt_s * 1e6))
        used = len(self._tokens)
        added = 0
        expert = self._expert_labels(ci, meta["clip_id"], frame_us) if self.expert_labels else None
        for j in range(first, last + 1):
            t0 = int(frame_us[j])
            if len(perturbed) and bool(np.any((perturbed[:, 0] < t0 + horizon_us) & (perturbed[:, 1] > t0))):
                self.skipped_perturbed += 1
                continue
            if expert is not None:
                times = s.waypoint_dt_s * np.arange(1, s.num_waypoints + 1)
                future = FutureTrajectory(expert.plans_xyyaw[j], times, np.ones(s.num_waypoints, bool))
            else:
                future = future_trajectory(poses, t0, s.num_waypoints * s.waypoint_dt_s, s.waypoint_dt_s)
            if int(future.valid.sum()) < s.min_valid_waypoints:
                continue
            self._index.append((used, j, step))
            route = None if expert is None or expert.route_path_xy is None else expert.route_path_xy[j]
            self._labels.append(_labels_at(poses, t0, int(commands[j]), future, s, route))
            self._clip_index.append(ci)
            added += 1
        if added:
            self._tokens.append(None if self.tokens is None else np.asarray(self.tokens.clip_tokens(pos)))

    def _expert_labels(self, ci: int, clip_id: str, frame_us: np.ndarray) -> ExpertPlanLabels:
        """The expert's plans (and routes) labelling clip `ci`, checked against the clip and the spec."""
        labels = read_labels(self.clips.root, clip_id)
        s = self.spec
        if labels.num_waypoints != s.num_waypoints or abs(labels.waypoint_dt_s - s.waypoint_dt_s) > 1e-9:
            raise ValueError(f"{self.clips.root}: the expert labels of {clip_id!r} have {labels.num_waypoints} waypoints every "
                             f"{labels.waypoint_dt_s} s; the planner predicts {s.num_waypoints} every {s.waypoint_dt_s} s")
        if not np.array_equal(labels.frame_timestamps_us, frame_us):
            raise ValueError(f"{self.clips.root}: the expert labels of {clip_id!r} are not for its frames (timestamps differ)")
        if s.route_path and labels.route_path_xy is None:
            raise ValueError(f"{self.clips.root}: the expert labels of {clip_id!r} record no route (a DAgger round from before "
                             "routes were recorded); the planner reads its route: record the round again")
        return labels

    def __len__(self) -> int:
        return len(self._index)

    @property
    def commands(self) -> np.ndarray:
        """(N,) int64 the route command of every window (RIGHT 0, LEFT 1, STRAIGHT 2)."""
        return np.array([labels.command for labels in self._labels], dtype=np.int64)

    @property
    def suites(self) -> np.ndarray:
        """(N,) str the scenario suite each window's clip was recorded in (its provenance `suite`;
        "" for clips that name none, e.g. logged driving)."""
        return self._provenance("suite")

    @property
    def maneuvers(self) -> np.ndarray:
        """(N,) str the scenario maneuver of each window's clip (provenance `maneuver`: straight, left,
        follow, stop_and_go, lead_brake, ...; "" for clips that name none)."""
        return self._provenance("maneuver")

    def _provenance(self, key: str) -> np.ndarray:
        """(N,) str provenance[key] of each window's clip ("" where the clip has no such key)."""
        by_clip = {ci: str((self.clips.meta(ci).get("provenance") or {}).get(key, "")) for ci in set(self._clip_index)}
        return np.array([by_clip[ci] for ci in self._clip_index], dtype=object)

    def __getitem__(self, i: int) -> PlannerBatch:
        used, j, step = self._index[i]
        s = self.spec
        clip_tokens = self._tokens[used]
        frames = j - step * np.arange(s.n_observed_frames - 1, -1, -1)  # oldest first
        n_padded = int((frames < 0).sum())
        frames[:n_padded] = frames[n_padded]  # the current frame is never padding
        labels = self._labels[i]
        tokens = future_tokens = None
        if clip_tokens is not None:
            tokens = torch.from_numpy(clip_tokens[frames].astype(np.int64))
            if s.n_future_frames:
                future = j + step * np.arange(1, s.n_future_frames + 1)
                future_tokens = torch.from_numpy(clip_tokens[future].astype(np.int64))
        return PlannerBatch(
            trajectory=torch.from_numpy(labels.trajectory),
            trajectory_valid=torch.from_numpy(labels.trajectory_valid),
            command=torch.tensor(labels.command, dtype=torch.int64),
            speed_mps=torch.tensor(labels.speed_mps, dtype=torch.float32),
            accel_mps2=torch.tensor(labels.accel_mps2, dtype=torch.float32),
            yaw_rate_rps=torch.tensor(labels.yaw_rate_rps, dtype=torch.float32),
            past_poses=torch.from_numpy(labels.past_poses),
            frame_times_s=torch.from_numpy(s.history_times_s.astype(np.float32)),
            n_padded=torch.tensor(n_padded, dtype=torch.int64),
            clip_index=torch.tensor(self._clip_index[i], dtype=torch.int64),
            frame_index=torch.tensor(j, dtype=torch.int64),
            tokens=tokens,
            future_tokens=future_tokens,
            route_path=torch.from_numpy(labels.route_path) if s.route_path else None,
        )


def split_clips(n_clips: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) clip positions: a seeded random `val_fraction` of the clips (at least one when
    val_fraction > 0 and there are two or more clips) is held out; both lists sorted."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = 0 if val_fraction == 0 or n_clips < 2 else max(1, int(round(val_fraction * n_clips)))
    order = np.random.default_rng(seed).permutation(n_clips)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())
