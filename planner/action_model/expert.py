"""The action expert: a narrow transformer whose every layer attends jointly with the world model's.

Dimensions (one scheme, pi0's): the expert has the world model's depth; its residual stream is
expert_width_ratio (1/4) as wide; its attention has the world model's head count and head dim, so
its q/k/v projections map width_e -> n_head * head_dim (the world model's attention width) and its
output projection maps back. Action queries and keys then live in the same space as the video
keys, with no key/value repetition. With the reference sizes this gives the reference's expert
sizes (S 21M, B 38M, L 151M parameters: per layer 4 * width_e * n_embd + 8 * width_e^2).

Blocks mirror the world model's: pre-LayerNorm without affine, no biases, 4x GELU MLP.
Shape letters: B batch, S samples per batch element, K waypoints, n action tokens (per sample),
Lv video tokens, C expert width, nh heads, hd head dim, D waypoint dim.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from planner.action_model.action_embedding import ActionInputEmbedding
from planner.action_model.conditions import ActionConditions
from planner.action_model.config import ActionModelConfig
from planner.action_model.video_stream import VideoContext, attention_scale
from world_model.gpt.config import GPTConfig


def _layer_norm(width: int) -> nn.LayerNorm:
    return nn.LayerNorm(width, elementwise_affine=False)


class ExpertBlock(nn.Module):
    """One expert layer, split around the (joint) attention call it shares with the video stream."""

    def __init__(self, width: int, n_head: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln_attn = _layer_norm(width)
        self.qkv = nn.Linear(width, 3 * n_head * head_dim, bias=False)
        self.proj = nn.Linear(n_head * head_dim, width, bias=False)
        self.resid_dropout = nn.Dropout(dropout)
        self.ln_mlp = _layer_norm(width)
        self.fc = nn.Linear(width, 4 * width, bias=False)
        self.mlp_proj = nn.Linear(4 * width, width, bias=False)
        self.mlp_dropout = nn.Dropout(dropout)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys, values (each (B, nh, n, hd)) of action tokens x (B, n, C)."""
        q, k, v = rearrange(self.qkv(self.ln_attn(x)), "b n (three nh hd) -> three b nh n hd", three=3, nh=self.n_head)
        return q, k, v

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """x (B, n, C) after the attention output attended (B, nh, n, hd): residual, then the MLP."""
        x = x + self.resid_dropout(self.proj(rearrange(attended, "b nh n hd -> b n (nh hd)")))
        return x + self.mlp_dropout(self.mlp_proj(F.gelu(self.fc(self.ln_mlp(x)))))  # (B, n, C)


class ActionExpert(nn.Module):
    """Velocity field of the flow over K waypoints, attending to cached video keys/values per layer."""

    def __init__(self, config: ActionModelConfig, world_model: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.width = config.expert_width(world_model)
        self.n_head = world_model.n_head
        self.head_dim = world_model.head_dim
        self.scale = attention_scale(world_model)
        self.dropout = config.dropout
        self.embed = ActionInputEmbedding(config, self.width)
        self.blocks = nn.ModuleList(ExpertBlock(self.width, self.n_head, self.head_dim, config.dropout) for _ in range(world_model.n_layer))
        self.ln_f = _layer_norm(self.width)
        self.head = nn.Linear(self.width, config.trajectory_dim, bias=False)
        self._init_weights(world_model.n_layer)

    def _init_weights(self, n_layer: int) -> None:
        # The input embedding keeps PyTorch's default (unit-scale) init, as pi0's action-time MLP:
        # with GPT-style std 0.02 there its SiLU stays nearly linear, and a tiny model took far
        # longer to learn command x waypoint interactions (it learned a per-command lateral offset
        # instead of a curve). The transformer blocks and head use the world model's init.
        for name, module in self.named_modules():
            if name.startswith("embed"):
                continue
            if isinstance(module, nn.Linear):
                # Residual-branch outputs scaled down with depth, as in the world model.
                std = 0.02 / math.sqrt(2 * n_layer) if name.startswith("blocks.") and name.endswith("proj") else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, video: VideoContext | None, x_t: torch.Tensor, t: torch.Tensor, conditions: ActionConditions) -> torch.Tensor:
        """Velocity (B, S, K, D) at noisy waypoints x_t (B, S, K, D) and flow times t (B, S).

        The S samples of a batch element share its video keys/values (no copy): their tokens are
        laid side by side and a block mask keeps each sample's tokens to themselves (and the video).
        video: per-layer keys/values of B windows, or None (no-video mode). Every action token sees
        every video token in `video` (pass `video.first_frames(n)` to restrict it to frames < n).
        """
        batch, n_samples = x_t.shape[:2]
        if (video is None) == self.config.uses_video:
            raise ValueError(f"ActionExpert: video_mode={self.config.video_mode!r} but video context is {'absent' if video is None else 'given'}")
        if video is not None and (video.batch_size != batch or video.n_layer != len(self.blocks)):
            raise ValueError(f"ActionExpert: video context of batch {video.batch_size} and {video.n_layer} layers for x_t batch {batch} and {len(self.blocks)} layers")
        tokens = self.embed(x_t, t, conditions)  # (B, S, n, C)
        n_tokens = tokens.shape[2]
        x = rearrange(tokens, "b s n c -> b (s n) c")  # (B, S*n, C)
        n_video = 0 if video is None else video.keys[0].shape[2]
        mask = self._sample_mask(n_samples, n_tokens, n_video, x.device)  # (S*n, Lv + S*n) or None
        dropout_p = self.dropout if self.training else 0.0
        for i, block in enumerate(self.blocks):
            q, k, v = block.qkv_heads(x)  # each (B, nh, S*n, hd)
            if video is not None:
                k = torch.cat([video.keys[i].to(k.dtype), k], dim=2)  # (B, nh, Lv + S*n, hd)
                v = torch.cat([video.values[i].to(v.dtype), v], dim=2)
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=self.scale)  # (B, nh, S*n, hd)
            x = block.finish(x, attended)  # (B, S*n, C)
        return self.output(rearrange(x, "b (s n) c -> b s n c", s=n_samples))

    def output(self, hidden: torch.Tensor) -> torch.Tensor:
        """Velocities (B, S, K, D) from final action-token states (B, S, n, C) (the ego token is dropped)."""
        return self.head(self.ln_f(hidden[:, :, -self.config.num_waypoints :]))

    @staticmethod
    def _sample_mask(n_samples: int, n_tokens: int, n_video: int, device: torch.device) -> torch.Tensor | None:
        """Attention mask (S*n, Lv + S*n), True = attend: all video, and the tokens of the same sample."""
        if n_samples == 1:
            return None
        sample = torch.arange(n_samples, device=device).repeat_interleave(n_tokens)  # (S*n,)
        same_sample = sample[:, None] == sample[None, :]  # (S*n, S*n)
        return torch.cat([torch.ones(len(sample), n_video, dtype=torch.bool, device=device), same_sample], dim=1)
