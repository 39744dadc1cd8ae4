"""Reference joint-attention forward pass (pi0-style), one attention call per layer.

Video tokens go through the world-model block, action tokens through the expert block; their
queries/keys/values are concatenated into a single attention call with the mask below and split
back. This is the definition the fast path (`VideoContext` keys/values computed once, then
`ActionExpert.forward` per flow step) must reproduce; tests check they agree. It is not used for
training or sampling.

Mask (True = attend), video tokens first:
  video -> video: causal;  video -> actions: never;
  actions -> video: frames < n_visible_frames;  actions -> actions: all (one sample's tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from planner.action_model.conditions import ActionConditions
from planner.action_model.expert import ActionExpert
from planner.action_model.video_stream import VideoStreamGPT


@dataclass(frozen=True)
class JointOutput:
    """video_logits (B, Lv, V) next-token logits of the video tokens; video_hidden (B, Lv, C_wm) their
    final states (before the final LayerNorm); velocity (B, K, D) of the action tokens."""

    video_logits: torch.Tensor
    video_hidden: torch.Tensor
    velocity: torch.Tensor


def joint_attention_mask(n_video: int, n_action: int, tokens_per_frame: int, n_visible_frames: int, device: torch.device | None = None) -> torch.Tensor:
    """(Lv + La, Lv + La) bool mask of the joint sequence [video tokens, action tokens]."""
    size = n_video + n_action
    mask = torch.zeros(size, size, dtype=torch.bool, device=device)
    mask[:n_video, :n_video] = torch.ones(n_video, n_video, dtype=torch.bool, device=device).tril()
    mask[n_video:, : n_visible_frames * tokens_per_frame] = True
    mask[n_video:, n_video:] = True
    return mask


def joint_forward(
    world_model: VideoStreamGPT,
    expert: ActionExpert,
    video_tokens: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    conditions: ActionConditions,
    n_visible_frames: int | None = None,
) -> JointOutput:
    """Joint pass over video tokens (B, T, h, w) and one action sample x_t (B, K, D) at flow times t (B,).

    n_visible_frames: the action tokens see frames 0..n-1 (default all T). Dropout must be off.
    """
    if (world_model.training and world_model.config.dropout > 0) or (expert.training and expert.dropout > 0):
        raise ValueError("joint_forward is a reference pass: call eval() first (dropout active)")
    n_frames = video_tokens.shape[1]
    n_visible = n_frames if n_visible_frames is None else n_visible_frames
    if not 1 <= n_visible <= n_frames:
        raise ValueError(f"joint_forward: n_visible_frames must be in [1, {n_frames}], got {n_visible}")
    xv = world_model.embed(video_tokens)  # (B, Lv, C_wm)
    xa = rearrange(expert.embed(x_t[:, None], t[:, None], conditions), "b s n c -> b (s n) c")  # (B, La, C_e)
    n_video, n_action = xv.shape[1], xa.shape[1]
    mask = joint_attention_mask(n_video, n_action, world_model.config.tokens_per_frame, n_visible, xv.device)
    for wm_block, expert_block in zip(world_model.blocks, expert.blocks, strict=True):
        attn = wm_block.attn
        qv, kv, vv = rearrange(attn.qkv(wm_block.ln_attn(xv)), "b n (three nh hd) -> three b nh n hd", three=3, nh=attn.n_head)
        qa, ka, va = expert_block.qkv_heads(xa)  # each (B, nh, La, hd)
        attended = F.scaled_dot_product_attention(
            torch.cat([qv, qa], dim=2), torch.cat([kv, ka], dim=2), torch.cat([vv, va], dim=2), attn_mask=mask, scale=attn.scale
        )  # (B, nh, Lv + La, hd)
        yv, ya = attended.split([n_video, n_action], dim=2)
        xv = xv + attn.resid_dropout(attn.proj(rearrange(yv, "b nh n hd -> b n (nh hd)")))
        xv = xv + wm_block.mlp(wm_block.ln_mlp(xv))  # (B, Lv, C_wm)
        xa = expert_block.finish(xa, ya)  # (B, La, C_e)
    logits = world_model.lm_head(world_model.ln_f(xv)) * world_model.output_mult  # (B, Lv, V)
    velocity = expert.output(xa[:, None])[:, 0]  # (B, K, D)
    return JointOutput(video_logits=logits, video_hidden=xv, velocity=velocity)
