"""Closed-loop planner around the flow-matching video-action model ("VAM").

Per call: the frames of the observation that lie on the model's frame grid (every frame_period_s,
2 Hz, ending at the newest frame) are looked up in a rolling buffer of already-encoded frames, and
only the missing ones are resized (no crop) to the tokenizer's input size and encoded, in one
batch. The newest `n_observed_frames` of them (padded at the start of an episode by repeating the
oldest, as training always saw full windows) form the video window; imagine mode appends greedily
generated frames (told, by an ego-motion-conditioned world model, the observed frames' motions
and the previous plan's motion for the imagined ones: planner/imagine_motion.py; a world model
that sees the warped last frame also gets the observation's camera mount for the ground-plane
warp, and imagines unconditioned where it is unknown). The world model fills the video keys/values once, then the ODE solver runs only
the action tokens against them. The executed plan is the chosen aggregate of the call's samples
(`InferenceSettings`, recorded in the export; planner.inference.AGGREGATES) drawn from a seeded
generator (reseeded on every reset), so an episode is reproducible.

Timings in plan.extras (milliseconds): encode_ms (tokenizer), context_ms (world-model pass that
fills the video keys/values, including imagination), flow_ms (ODE solve), total_ms (whole call).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import median
from typing import Any, Protocol

import numpy as np
import torch

from contract import EpisodeInfo, Observation, Plan, Planner
from contract.observation import ROUTE_AHEAD_M
from data.image import resize_rgb
from data.schema import CameraIntrinsics
from planner.action_model.checkpoint import load_vam_export
from planner.action_model.conditions import ActionConditions, conditions_from_observation
from planner.action_model.model import VideoActionModel
from planner.action_model.sampling import sample_trajectories
from planner.imagine_motion import PlanRecord, imagined_motions, observed_motions
from planner.inference import InferenceSettings, aggregate_samples
from world_model.warp_tokens import GroundTokenWarper

PRECISIONS = ("fp32", "bf16")
class FrameTokenizer(Protocol):
    """What the planner needs of an image tokenizer (world_model.tokenizer.ImageTokenizer satisfies it)."""

    @property
    def downsample_factor(self) -> int: ...

    def encode(self, images: torch.Tensor) -> Any:
        """images (B, 3, H, W) float in [-1, 1] -> an object with .indices (B, H/f, W/f) int64."""
        ...


@dataclass(frozen=True)
class VAMPlannerConfig:
    """inference: ODE steps, solver, samples and their aggregate; seed: noise seed (the generator is
    reseeded with it at every reset, so each episode is reproducible); frame_period_s: spacing [s]
    of the frames the world model was trained on; device: torch device; precision: fp32 or bf16
    (autocast; bf16 only pays off on CUDA)."""

    inference: InferenceSettings
    seed: int
    frame_period_s: float
    device: str
    precision: str

    def __post_init__(self) -> None:
        if not self.frame_period_s > 0:
            raise ValueError(f"VAMPlannerConfig.frame_period_s must be > 0, got {self.frame_period_s}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"VAMPlannerConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")

    @property
    def frame_tolerance_s(self) -> float:
        """[s] how far a frame's time may be from the model's frame grid (less than half a period)."""
        return min(0.1, 0.4 * self.frame_period_s)


def _frames_to_images(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1] (the tokenizers' input convention)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous().float() / 127.5 - 1.0


class VAMPlanner(Planner):
    """Planner(reset, plan) around a VideoActionModel and an image tokenizer; see the module docstring.

    `VAMPlanner.from_checkpoint` is the one way to get the planner of an export: the CLI's registry,
    `eval`, `serve`, the demo and notebooks all build it there, so they plan alike.
    """

    name = "vam"
    privileged = False
    batched = True

    def __init__(self, model: VideoActionModel, tokenizer: FrameTokenizer | None, config: VAMPlannerConfig) -> None:
        if model.config.uses_video and tokenizer is None:
            raise ValueError(f"VAMPlanner: video_mode={model.config.video_mode!r} needs an image tokenizer")
        self.config = config
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"VAMPlanner: device={config.device!r} but this torch sees no CUDA GPU (torch {torch.__version__}); use device=cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        if isinstance(tokenizer, torch.nn.Module):
            tokenizer.to(self.device).eval()
        wm = model.world_model_config
        factor = int(tokenizer.downsample_factor) if tokenizer is not None else 0
        self.image_hw = (wm.tokens_h * factor, wm.tokens_w * factor)
        self.generator = torch.Generator()
        self._buffer: dict[float, torch.Tensor] = {}  # frame time [s] -> tokens (h, w) int64
        # Rollout videos: once enabled, each plan() also decodes the world model's greedy prediction
        # of the next frame (config.frame_period_s ahead) into _predicted_frame (H, W, 3) uint8.
        self._predict_frames = False
        self._predicted_frame: np.ndarray | None = None
        self._warned_sizes: set[tuple[int, int]] = set()
        self._previous_plan: PlanRecord | None = None  # the candidate motion of the next imagination
        self.reset(EpisodeInfo("init"))

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        tokenizer: str | Path | None = None,
        *,
        n_steps: int | None = None,
        solver: str | None = None,
        n_samples: int | None = None,
        aggregate: str | None = None,
        video_mode: str | None = None,
        n_imagined_frames: int | None = None,
        seed: int = 0,
        device: str = "cpu",
        precision: str = "fp32",
    ) -> "VAMPlanner":
        """The planner of an exported action model (`OUT/vam` of `foresight train planner`), from local paths.

        Everything it was exported with applies: its inference settings (ODE steps, solver, samples,
        aggregate), its frame period, and the tokenizer copied beside it (`tokenizer` replaces it; it
        must match the weights checksum the export recorded). Arguments that are not None override
        the recorded inference settings; `video_mode="imagine"` with `n_imagined_frames` runs an
        observed-mode export as imagine-then-act (same weights).
        """
        export = load_vam_export(path, tokenizer)
        model = export.model
        if video_mode is not None:
            n_imagined = int(n_imagined_frames or 1) if video_mode == "imagine" else 0
            if (video_mode, n_imagined) != (model.config.video_mode, model.config.n_imagined_frames):
                model = model.with_video_mode(video_mode, n_imagined)
        recorded = export.inference
        inference = InferenceSettings(
            n_steps=recorded.n_steps if n_steps is None else int(n_steps),
            solver=recorded.solver if solver is None else str(solver),
            n_samples=recorded.n_samples if n_samples is None else int(n_samples),
            aggregate=recorded.aggregate if aggregate is None else str(aggregate),
        )
        config = VAMPlannerConfig(inference=inference, seed=int(seed), frame_period_s=export.frame_period_s, device=str(device), precision=str(precision))
        return cls(model, export.tokenizer, config)

    @property
    def num_waypoints(self) -> int:
        return self.model.config.num_waypoints

    @property
    def plan_dt_s(self) -> float:
        return self.model.config.waypoint_dt_s

    @property
    def uses_camera(self) -> bool:  # type: ignore[override]  # a no-video model never looks
        return self.model.config.uses_video

    @property
    def camera_hw(self) -> tuple[int, int] | None:  # type: ignore[override]  # the tokenizer's input size
        return self.image_hw if self.model.config.uses_video else None

    @property
    def predicts_frames(self) -> bool:  # type: ignore[override]  # only with a world model
        return self.model.config.uses_video

    def enable_frame_prediction(self) -> None:
        if not self.predicts_frames:
            super().enable_frame_prediction()
        self._predict_frames = True

    @property
    def predicted_frame(self) -> np.ndarray | None:
        return self._predicted_frame

    def reset(self, episode: EpisodeInfo) -> None:
        """Forget buffered frames; reseed the noise from config.seed (every episode starts alike)."""
        self._buffer.clear()
        self._previous_plan = None
        self.generator.manual_seed(self.config.seed * 1_000_003)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _autocast(self) -> torch.autocast:
        enabled = self.config.precision == "bf16"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _grid_times(self, observation: Observation) -> list[float]:
        """Times of the frames on the model's frame grid, newest first, as far back as the window reaches."""
        c = self.config
        newest = float(observation.frame_timestamps_s[-1])
        return [newest - k * c.frame_period_s for k in range(self.model.n_observed_frames)]

    def _window_plan(self, observation: Observation) -> tuple[list[float], list[tuple[float, int]]]:
        """The observed window's frame times (buffer keys, newest first) and the frames to encode
        for it: (time, index into the observation's frames) of those not yet in the buffer."""
        c = self.config
        if self._buffer and float(observation.frame_timestamps_s[-1]) < max(self._buffer) - c.frame_tolerance_s:
            self._buffer.clear()  # time went backwards: a new episode without reset
        frame_times = np.asarray(observation.frame_timestamps_s)
        window: list[float] = []
        to_encode: list[tuple[float, int]] = []
        for target in self._grid_times(observation):
            cached = [t for t in self._buffer if abs(t - target) <= c.frame_tolerance_s]
            if cached:
                window.append(min(cached, key=lambda t: abs(t - target)))
                continue
            nearest = int(np.argmin(np.abs(frame_times - target)))
            if abs(frame_times[nearest] - target) > c.frame_tolerance_s:
                break  # a gap: older frames would not be at the trained spacing
            to_encode.append((float(frame_times[nearest]), nearest))
            window.append(float(frame_times[nearest]))
        return window, to_encode

    def _window_tokens(self, window: list[float]) -> tuple[torch.Tensor, int]:
        """(T, h, w) tokens of the window (all in the buffer by now; padded at the start by repeating
        the oldest frame, as training always saw full windows) and how many of its T frames are padding."""
        self._buffer = {t: self._buffer[t] for t in window}  # keep only the current window
        grids = [self._buffer[t] for t in reversed(window)]  # oldest first
        n_padded = self.model.n_observed_frames - len(grids)
        return torch.stack([grids[0]] * n_padded + grids), n_padded

    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        """Token grids (N, h, w) int64 of frames (N, H, W, 3) uint8 already at the tokenizer's input size."""
        assert self.tokenizer is not None
        indices = self.tokenizer.encode(_frames_to_images(frames).to(self.device)).indices
        wm = self.model.world_model_config
        if tuple(indices.shape[1:]) != (wm.tokens_h, wm.tokens_w):
            raise ValueError(f"tokenizer gives {tuple(indices.shape[1:])} token grids, the world model expects ({wm.tokens_h}, {wm.tokens_w})")
        return indices.long()

    @staticmethod
    def _observed_batch(planners: Sequence["VAMPlanner"], observations: Sequence[Observation]) -> tuple[torch.Tensor, list[int]]:
        """(B, T, h, w) observed windows of several episodes (planner i, observation i), the frames
        missing from their buffers encoded in one tokenizer call; and each window's padding."""
        lead = planners[0]
        plans = [p._window_plan(o) for p, o in zip(planners, observations)]
        frames = []
        for p, o, (_, to_encode) in zip(planners, observations, plans):
            if to_encode:
                p._warn_once_if_rescaled(o.frames_rgb.shape[1:3])
                frames += [resize_rgb(o.frames_rgb[i], *lead.image_hw) for _, i in to_encode]
        grids = iter(lead._encode(np.stack(frames)) if frames else [])
        windows, padding = [], []
        for p, (window, to_encode) in zip(planners, plans):
            for t, _ in to_encode:
                p._buffer[t] = next(grids)
            tokens, n_padded = p._window_tokens(window)
            windows.append(tokens)
            padding.append(n_padded)
        return torch.stack(windows), padding

    def _warn_once_if_rescaled(self, frame_hw: tuple[int, int]) -> None:
        """Name a camera whose frames must be rescaled to the tokenizer's input (once per planner)."""
        frame_hw = tuple(int(v) for v in frame_hw)
        if frame_hw != self.image_hw and frame_hw not in self._warned_sizes:
            self._warned_sizes.add(frame_hw)
            scale = self.image_hw[0] / frame_hw[0]
            warnings.warn(
                f"VAMPlanner: camera frames of {frame_hw[0]}x{frame_hw[1]} are {'up' if scale > 1 else 'down'}scaled x{scale:.2f} "
                f"to the tokenizer's {self.image_hw[0]}x{self.image_hw[1]} input; render at that size (runner.image_height/width: null) to avoid it",
                stacklevel=3,
            )

    def _predict_frame(self, observed: torch.Tensor) -> np.ndarray:
        """The world model's greedy next frame after observed (1, T, h, w), decoded: (H, W, 3) uint8."""
        assert self.tokenizer is not None
        with self._autocast():
            tokens = self.model.imagine(observed[:, -self.model.n_observed_frames :], 1)[:, 0]  # (1, h, w)
        image = self.tokenizer.decode_indices(tokens).float()[0]  # (3, H, W) in [-1, 1]
        return ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()

    def replica(self) -> "VAMPlanner":
        """A planner for another episode sharing this one's model, tokenizer and settings (batched
        closed loop); its own frame buffer and noise generator."""
        twin = VAMPlanner(self.model, self.tokenizer, self.config)
        if self._predict_frames:
            twin.enable_frame_prediction()
        return twin

    @torch.no_grad()
    def plan(self, observation: Observation) -> Plan:
        return self.plan_batch([self], [observation])[0]

    @classmethod
    @torch.no_grad()
    def plan_batch(cls, planners: Sequence[Planner], observations: Sequence[Observation]) -> list[Plan]:
        """One plan per episode with one tokenizer call, one world-model pass and one ODE solve for
        all of them. Planners that do not share one model (not `replica`s of one planner) are asked
        in turn. Each episode's noise comes from its own generator, so its plans do not depend on
        the other episodes in the batch."""
        if len(planners) != len(observations):
            raise ValueError(f"plan_batch: {len(planners)} planners for {len(observations)} observations")
        lead = planners[0]
        if len(planners) > 1 and not all(isinstance(p, VAMPlanner) and p.model is lead.model and p.config == lead.config for p in planners):
            return [p.plan(o) for p, o in zip(planners, observations)]
        vams: list[VAMPlanner] = list(planners)  # type: ignore[arg-type]
        start = time.perf_counter()
        extras: dict[str, Any] = {"batch_size": len(vams)}
        video = None
        padding: list[int] = []
        encode_ms = context_ms = 0.0
        if lead.model.config.uses_video:
            observed, padding = cls._observed_batch(vams, observations)  # (B, T, h, w)
            lead._sync()
            after_encode = time.perf_counter()
            encode_ms = 1e3 * (after_encode - start)
            motion = cls._imagination_motions(vams, observations, padding) if lead._imagines_with_motion else None
            warper = None
            if motion is not None and lead.model.world_model_config.prev_frame_warp:
                warper = lead._imagination_warper(observations)
                motion = None if warper is None else motion  # no mount at all: unconditioned, as told nothing
            with lead._autocast():
                video_tokens = lead.model.video_tokens(observed, ego_motion=motion, warper=warper)
                video = lead.model.encode_video(video_tokens)
            lead._sync()
            context_ms = 1e3 * (time.perf_counter() - after_encode)
            extras["n_observed_frames"] = int(observed.shape[1])  # window length, padding included
            for i, p in enumerate(vams):
                if p._predict_frames:
                    p._predicted_frame = p._predict_frame(observed[i : i + 1])
        flow_start = time.perf_counter()
        conditions = ActionConditions.cat([conditions_from_observation(o, lead.model.config) for o in observations])
        inference = lead.config.inference
        with lead._autocast():
            samples = sample_trajectories(lead.model, video, conditions, inference.n_samples, inference.n_steps, inference.solver, [p.generator for p in vams])
        trajectories = aggregate_samples(samples.float(), inference.aggregate).double().cpu().numpy()  # (B, K, D), synchronises
        end = time.perf_counter()
        extras.update(encode_ms=encode_ms, context_ms=context_ms, flow_ms=1e3 * (end - flow_start), total_ms=1e3 * (end - start))
        plans = []
        for i in range(len(vams)):
            own = dict(extras)
            if lead.model.config.uses_video:
                own["n_padded_frames"] = padding[i]
                if lead.model.config.video_mode == "imagine":
                    own["imagined_tokens"] = video_tokens[i, observed.shape[1] :].cpu().numpy()
            plans.append(Plan(waypoints=trajectories[i].copy(), dt_s=lead.model.config.waypoint_dt_s, extras=own))
            vams[i]._previous_plan = PlanRecord.of(observations[i].time_s, trajectories[i], lead.model.config.waypoint_dt_s)
        return plans

    @property
    def _imagines_with_motion(self) -> bool:
        """Imagine mode with an ego-motion-conditioned world model: imaginations are told a motion."""
        return self.model.config.video_mode == "imagine" and self.model.world_model_config.ego_motion_input

    @staticmethod
    def _imagination_motions(planners: Sequence["VAMPlanner"], observations: Sequence[Observation], padding: list[int]) -> torch.Tensor:
        """(B, T + N, 3) motions into each episode's observed window (from its ego history) and its
        N imagined frames (its previous plan's motion); planner/imagine_motion.py. All unknown (NaN)
        for an episode whose camera mount is unknown when the world model needs it for the warped
        last frame (`prev_frame_warp`): that episode imagines unconditioned."""
        lead = planners[0]
        n_imagined = lead.model.config.n_imagined_frames
        needs_mount = lead.model.world_model_config.prev_frame_warp
        rows = []
        for p, o, n_padded in zip(planners, observations, padding):
            times: list[float | None] = [None] * n_padded + sorted(p._buffer)  # the window, oldest first
            row = np.concatenate([observed_motions(times, o), imagined_motions(p._previous_plan, o, p.config.frame_period_s, n_imagined)])
            rows.append(np.full_like(row, np.nan) if needs_mount and o.camera_extrinsics is None else row)
        return torch.from_numpy(np.stack(rows)).to(lead.device)

    def _imagination_warper(self, observations: Sequence[Observation]) -> GroundTokenWarper | None:
        """The ground-plane warper of a batch's imaginations: each observation's camera (its intrinsics
        rescaled to the tokenizer's input, its mount), None where the mount is unknown; None when no
        observation has one."""
        if all(o.camera_extrinsics is None for o in observations):
            return None
        assert self.tokenizer is not None
        height, width = self.image_hw
        cameras = []
        for o in observations:
            if o.camera_extrinsics is None:
                cameras.append(None)
                continue
            frame_h, frame_w = o.frames_rgb.shape[1:3]
            intrinsics = CameraIntrinsics.from_matrix(o.camera_intrinsics, frame_w, frame_h).resized(width=width, height=height)
            cameras.append((intrinsics, o.camera_extrinsics))
        return GroundTokenWarper(self.tokenizer, cameras)


def synthetic_observations(n: int, height: int, width: int, seed: int = 0, n_frames: int = 4, period_s: float = 0.5, speed_mps: float = 8.0) -> list[Observation]:
    """A stream of n observations every period_s with random frames (n_frames each, 2 Hz) of an ego
    driving straight at speed_mps on a straight route; for timing planners without a simulator."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n + n_frames - 1, height, width, 3), dtype=np.uint8)
    intrinsics = np.array([[width, 0.0, width / 2], [0.0, width, height / 2], [0.0, 0.0, 1.0]])
    observations = []
    for i in range(n):
        now = (i + n_frames - 1) * period_s
        times = now - period_s * np.arange(n_frames)[::-1]
        history = np.stack([-speed_mps * (now - times), np.zeros(n_frames), np.zeros(n_frames)], axis=1)
        observations.append(
            Observation(
                frames_rgb=frames[i : i + n_frames],
                frame_timestamps_s=times,
                ego_history_xyyaw=history,
                ego_history_timestamps_s=times,
                speed_mps=speed_mps,
                accel_mps2=0.0,
                yaw_rate_rps=0.0,
                command=2,
                camera_intrinsics=intrinsics,
                time_s=now,
                route_ahead_xy=np.array([[0.0, 0.0], [ROUTE_AHEAD_M, 0.0]]),
            )
        )
    return observations


def benchmark_plan_batch(planner: VAMPlanner, observations: Sequence[Observation], batch: int, warmup: int = 2) -> dict[str, float]:
    """Plans per second of `planner` asked for `batch` episodes at once (`plan_batch`, as the batched
    closed loop asks), each episode a replica seeing the same stream; the first `warmup` calls are
    not timed. Returns plan_batch_ms (median per call) and plans_per_s (batch / that)."""
    if batch < 1 or len(observations) <= warmup:
        raise ValueError(f"benchmark_plan_batch: need batch >= 1 and more than warmup={warmup} observations, got {batch}, {len(observations)}")
    replicas = [planner.replica() for _ in range(batch)]
    for i, replica in enumerate(replicas):
        replica.reset(EpisodeInfo(f"benchmark-{i}"))
    times_ms = []
    for i, observation in enumerate(observations):
        started = time.perf_counter()
        VAMPlanner.plan_batch(replicas, [observation] * batch)  # plans come back as numpy: the device has finished
        if i >= warmup:
            times_ms.append((time.perf_counter() - started) * 1e3)
    call_ms = median(times_ms)
    return {"plan_batch_ms": call_ms, "plans_per_s": batch / call_ms * 1e3}


def benchmark_planner(planner: VAMPlanner, observations: Sequence[Observation], warmup: int = 2, rounds: int = 2) -> dict[str, Any]:
    """Median per-call timings [ms] of `planner` with 10 and with 1 Euler step over the same stream.

    Each round plays the stream with 10 steps then with 1 step (fresh reset each time); the first
    `warmup` calls of each play are not timed (they encode the whole window). Returns encode_ms,
    context_ms, flow_ms, total_ms (10 steps), flow_ms_1step, total_ms_1step,
    ratio_10step_vs_1step (total), ratio_model_10step_vs_1step (context + flow, no tokenizer),
    n_timed_calls, device, and parameter counts.
    """
    if len(observations) <= warmup:
        raise ValueError(f"benchmark_planner: need more than warmup={warmup} observations, got {len(observations)}")
    timings: dict[int, dict[str, list[float]]] = {n: {"encode_ms": [], "context_ms": [], "flow_ms": [], "total_ms": []} for n in (10, 1)}
    for _ in range(rounds):
        for n_steps in (10, 1):
            inference = replace(planner.config.inference, n_steps=n_steps, solver="euler")
            runner = VAMPlanner(planner.model, planner.tokenizer, replace(planner.config, inference=inference))
            runner.reset(EpisodeInfo("benchmark"))
            for i, observation in enumerate(observations):
                extras = runner.plan(observation).extras
                if i >= warmup:
                    for key, values in timings[n_steps].items():
                        values.append(float(extras[key]))
    med = {n: {k: median(v) for k, v in t.items()} for n, t in timings.items()}
    model = planner.model
    return {
        "encode_ms": med[10]["encode_ms"],
        "context_ms": med[10]["context_ms"],
        "flow_ms": med[10]["flow_ms"],
        "total_ms": med[10]["total_ms"],
        "flow_ms_1step": med[1]["flow_ms"],
        "total_ms_1step": med[1]["total_ms"],
        "ratio_10step_vs_1step": med[10]["total_ms"] / med[1]["total_ms"],
        "ratio_model_10step_vs_1step": (med[10]["context_ms"] + med[10]["flow_ms"]) / (med[1]["context_ms"] + med[1]["flow_ms"]),
        "n_timed_calls": len(timings[10]["total_ms"]),
        "device": str(planner.device),
        "video_mode": model.config.video_mode,
        "expert_params": model.expert.num_params(),
        "world_model_params": 0 if model.world_model is None else model.world_model.num_params(),
    }
