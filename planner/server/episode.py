"""What the server remembers between /reset calls: the last frames and ego poses, as our simulator keeps them.

NeuroNCAP sends one frame and one pose per /infer call (2 Hz). The buffer turns that stream into the
`Observation` a planner sees in our closed loop: the last `num_frames` front-camera frames, and the
ego poses of the last `history_s` seconds re-expressed in the current ego frame. Times are seconds
since the episode's first /infer, like the simulator's clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from contract import Observation, world_to_ego
from contract.observation import ROUTE_AHEAD_M
from data.image import resize_rgb
from data.schema import CameraIntrinsics
from planner.server.schema import InferRequest, RequestError


@dataclass(frozen=True)
class BufferConfig:
    """num_frames: frames per observation (newest last); history_s: ego-history window [s];
    frame_hw: resize frames to (H, W) [px] and scale the intrinsics to match, or None to keep them;
    route_if_missing: what the observation's route is when a request sends no `route_ahead`
    (NeuroNCAP sends none): "none" (a planner that reads the route then fails the call, saying so)
    or "straight" (straight ahead along the ego's heading, ROUTE_AHEAD_M long)."""

    num_frames: int = 4
    history_s: float = 2.0
    frame_hw: tuple[int, int] | None = None
    route_if_missing: str = "none"

    def __post_init__(self) -> None:
        if not isinstance(self.num_frames, int) or self.num_frames < 1:
            raise ValueError(f"BufferConfig.num_frames must be an int >= 1, got {self.num_frames!r}")
        if not (isinstance(self.history_s, (int, float)) and math.isfinite(self.history_s) and self.history_s >= 0):
            raise ValueError(f"BufferConfig.history_s must be a finite number >= 0, got {self.history_s!r}")
        if self.route_if_missing not in ("none", "straight"):
            raise ValueError(f"BufferConfig.route_if_missing must be 'none' or 'straight', got {self.route_if_missing!r}")
        if self.frame_hw is not None:
            hw = tuple(self.frame_hw)
            if len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
                raise ValueError(f"BufferConfig.frame_hw must be None or two positive ints (H, W), got {self.frame_hw!r}")
            object.__setattr__(self, "frame_hw", hw)


class EpisodeBuffer:
    """Rolling frames and poses of one NeuroNCAP scenario. Not thread-safe: the server holds a lock."""

    def __init__(self, config: BufferConfig) -> None:
        self.config = config
        self.frames: deque[np.ndarray] = deque(maxlen=config.num_frames)
        self.frame_times_s: deque[float] = deque(maxlen=config.num_frames)
        self.poses_xyyaw: deque[np.ndarray] = deque()
        self.pose_times_s: deque[float] = deque()
        self.start_us: int | None = None
        self.last_us: int | None = None

    @property
    def num_calls(self) -> int:
        return len(self.pose_times_s)

    def observe(self, request: InferRequest) -> Observation:
        """Add this request's frame and pose, and return the observation at its time.

        RequestError 422 if the timestamp does not increase, or the frame size changes, within the episode.
        """
        if self.last_us is not None and request.timestamp_us <= self.last_us:
            raise RequestError(
                422, "timestamp", f"{request.timestamp_us} us does not increase on the previous {self.last_us} us; "
                "POST /reset before a new scenario"
            )
        frame, intrinsics = self._frame(request)
        if self.frames and self.frames[-1].shape != frame.shape:
            raise RequestError(
                422, "images", f"frame size changed within the episode from {self.frames[-1].shape[:2]} to "
                f"{frame.shape[:2]}; POST /reset before a new scenario"
            )
        if self.start_us is None:
            self.start_us = request.timestamp_us
        self.last_us = request.timestamp_us
        time_s = (request.timestamp_us - self.start_us) * 1e-6
        self.frames.append(frame)
        self.frame_times_s.append(time_s)
        self.poses_xyyaw.append(request.pose_xyyaw)
        self.pose_times_s.append(time_s)
        while self.pose_times_s[0] < time_s - self.config.history_s - 1e-6:
            self.poses_xyyaw.popleft()
            self.pose_times_s.popleft()

        history = world_to_ego(np.stack(self.poses_xyyaw), request.pose_xyyaw)
        history[:, 2] = np.angle(np.exp(1j * history[:, 2]))  # wrap to (-pi, pi]
        history[-1] = 0.0
        return Observation(
            frames_rgb=np.stack(self.frames),
            frame_timestamps_s=np.array(self.frame_times_s),
            ego_history_xyyaw=history,
            ego_history_timestamps_s=np.array(self.pose_times_s),
            speed_mps=request.speed_mps,
            accel_mps2=request.accel_mps2,
            yaw_rate_rps=request.yaw_rate_rps,
            command=request.command,
            camera_intrinsics=intrinsics,
            time_s=time_s,
            camera_extrinsics=request.front_extrinsics,
            route_ahead_xy=self._route(request),
        )

    def _route(self, request: InferRequest) -> np.ndarray | None:
        if request.route_ahead_xy is not None or self.config.route_if_missing == "none":
            return request.route_ahead_xy
        return np.array([[0.0, 0.0], [ROUTE_AHEAD_M, 0.0]])

    def _frame(self, request: InferRequest) -> tuple[np.ndarray, np.ndarray]:
        frame, k = request.front_rgb, request.front_intrinsics
        if self.config.frame_hw is None or frame.shape[:2] == self.config.frame_hw:
            return frame, k
        height, width = self.config.frame_hw
        source = CameraIntrinsics(
            fx=float(k[0, 0]), fy=float(k[1, 1]), cx=float(k[0, 2]), cy=float(k[1, 2]),
            width=frame.shape[1], height=frame.shape[0],
        )
        resized = source.resized(width=width, height=height).matrix()
        resized[0, 1] = k[0, 1] * width / frame.shape[1]  # keep any skew, scaled like fx
        return resize_rgb(frame, height, width), resized
