"""The video-action model: the world model (video stream) plus the action expert, and what video
the action tokens attend to in each mode.

Modes (ActionModelConfig.video_mode):
  observed: the newest max_frames observed frames, the current one last;
  imagine:  the newest max_frames - N observed frames followed by N frames the world model
            generates greedily from them ("imagine then act"); in training, true future frames may
            stand in for the generated ones (teacher forcing);
  none:     no video and no world model (ego status only, the AD-MLP-like ablation).
The expert weights have the same shapes in every mode, so one checkpoint format serves all three.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn as nn

from planner.action_model.conditions import ActionConditions
from planner.action_model.config import ActionModelConfig
from planner.action_model.expert import ActionExpert
from planner.action_model.video_stream import VideoContext, VideoStreamGPT
from world_model.gpt.config import GPTConfig
from world_model.gpt.generate import TokenWarper, rollout
from world_model.gpt.model import GPT
from world_model.gpt.sampling import SamplingConfig
from world_model.warp_tokens import window_warped_tokens


class VideoActionModel(nn.Module):
    """World model (None in no-video mode) + action expert; see the module docstring."""

    def __init__(self, world_model: GPTConfig, config: ActionModelConfig) -> None:
        super().__init__()
        if config.video_mode == "imagine" and config.n_imagined_frames >= world_model.max_frames:
            raise ValueError(
                f"VideoActionModel: {config.n_imagined_frames} imagined frames leave no observed frame in the world model's "
                f"{world_model.max_frames}-frame context"
            )
        self.world_model_config = world_model
        self.config = config
        self.world_model = VideoStreamGPT(world_model) if config.uses_video else None
        self.expert = ActionExpert(config, world_model)
        if self.world_model is not None:
            wm_scales = {block.attn.scale for block in self.world_model.blocks}
            if wm_scales != {self.expert.scale}:
                raise ValueError(f"VideoActionModel: expert attention scale {self.expert.scale} != world model's {wm_scales}")

    @classmethod
    def from_world_model(cls, gpt: GPT, config: ActionModelConfig) -> "VideoActionModel":
        """A model whose world model is a copy of `gpt` (e.g. a pretrained one) and a fresh expert."""
        model = cls(gpt.config, config)
        if model.world_model is not None:
            model.world_model.load_state_dict(gpt.state_dict())
        return model.to(next(gpt.parameters()).device)

    def with_video_mode(self, video_mode: str, n_imagined_frames: int) -> "VideoActionModel":
        """The same weights in another video mode (observed <-> imagine; the expert's weights have the
        same shapes in both), in eval mode. 'none' cannot be reached from a video model (nor the
        reverse): its expert never learned to plan without video, so that needs its own checkpoint."""
        if (video_mode == "none") != (not self.config.uses_video):
            raise ValueError(f"cannot run a video_mode={self.config.video_mode!r} checkpoint in video_mode={video_mode!r}; train one for it")
        config = replace(self.config, video_mode=video_mode, n_imagined_frames=int(n_imagined_frames) if video_mode == "imagine" else 0)
        switched = VideoActionModel(self.world_model_config, config)
        switched.load_state_dict(self.state_dict())
        return switched.to(next(self.parameters()).device).eval()

    @property
    def n_observed_frames(self) -> int:
        """Observed frames the action tokens attend to: config.observed_frames, at most (and by
        default) the world model's context minus the imagined frames."""
        return self.config.observed_frame_count(self.world_model_config.max_frames)

    def video_tokens(
        self, observed: torch.Tensor, future: torch.Tensor | None = None, ego_motion: torch.Tensor | None = None, warper: TokenWarper | None = None
    ) -> torch.Tensor:
        """Window (B, T', h, w) the action tokens attend to, from observed tokens (B, T, h, w) (current last).

        Keeps the newest `n_observed_frames` observed frames; in imagine mode appends N frames:
        `future[:, :N]` (B, >=N, h, w) when given (teacher forcing), else a greedy world-model rollout,
        told the ego's motions (B, n_observed_frames + N, 3) when given, with `warper` (see `imagine`).
        """
        if self.world_model is None:
            raise ValueError("VideoActionModel.video_tokens: this model has video_mode='none'")
        observed = observed[:, -self.n_observed_frames :]
        n_imagined = self.config.n_imagined_frames
        if self.config.video_mode != "imagine":
            return observed
        if future is not None:
            if future.ndim != 4 or future.shape[0] != observed.shape[0] or future.shape[1] < n_imagined or future.shape[2:] != observed.shape[2:]:
                raise ValueError(f"VideoActionModel.video_tokens: future tokens must be (B, >={n_imagined}, h, w) like observed {tuple(observed.shape)}, got {tuple(future.shape)}")
            imagined = future[:, :n_imagined].to(observed.dtype)
        else:
            imagined = self.imagine(observed, n_imagined, ego_motion, warper)
        return torch.cat([observed, imagined], dim=1)

    def imagine(self, observed: torch.Tensor, n_frames: int, ego_motion: torch.Tensor | None = None, warper: TokenWarper | None = None) -> torch.Tensor:
        """Greedy world-model rollout (B, n_frames, h, w) after observed (B, T, h, w); no gradients.

        ego_motion: None, or (B, T + n_frames, 3) motions into the observed and imagined frames
        (world_model/gpt/ego_motion.py; NaN = unknown), used by an ego-motion-conditioned world model
        and ignored by any other. A world model with prev_frame_warp was trained to see the warped
        previous frame whenever it is told a motion: `warper` (e.g. world_model.warp_tokens.GroundTokenWarper
        with the episodes' cameras) makes those of the observed frames and of each imagined one; without
        a warper such a model imagines unconditioned (told nothing, as in its conditioning dropout)."""
        assert self.world_model is not None
        c = self.world_model_config
        if not c.ego_motion_input or (c.prev_frame_warp and warper is None):
            ego_motion = None
        warped_prev = None
        if c.prev_frame_warp and ego_motion is not None:
            warped_prev = window_warped_tokens(observed, ego_motion, warper)  # (B, T, h, w); the rollout's warper does the imagined frames
        else:
            warper = None
        was_training = self.world_model.training
        self.world_model.eval()  # generation refuses active dropout
        try:
            return rollout(self.world_model, observed, n_frames, SamplingConfig.greedy(), ego_motion=ego_motion, warped_prev=warped_prev, warper=warper)
        finally:
            self.world_model.train(was_training)

    def encode_video(self, video_tokens: torch.Tensor | None) -> VideoContext | None:
        """Per-layer video keys/values of a window (B, T, h, w) (None in no-video mode)."""
        if self.world_model is None:
            return None
        if video_tokens is None:
            raise ValueError(f"VideoActionModel.encode_video: video_mode={self.config.video_mode!r} needs video tokens")
        return self.world_model.video_context(video_tokens)

    def context(self, observed: torch.Tensor | None, future: torch.Tensor | None = None) -> VideoContext | None:
        """`encode_video(video_tokens(observed, future))`, or None in no-video mode."""
        if self.world_model is None:
            return None
        if observed is None:
            raise ValueError(f"VideoActionModel.context: video_mode={self.config.video_mode!r} needs observed tokens")
        return self.encode_video(self.video_tokens(observed, future))

    def velocity(self, video: VideoContext | None, x_t: torch.Tensor, t: torch.Tensor, conditions: ActionConditions) -> torch.Tensor:
        """Predicted flow velocity (B, S, K, D) in model units; see `ActionExpert.forward`."""
        return self.expert(video, x_t, t, conditions)
