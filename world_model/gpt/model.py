"""GPT-2 style next-token model over video frames given as integer token grids.

Frames (T, h, w) are flattened in raster order (t, h, w) into one sequence of L = T*h*w tokens and
attended fully causally. There is no BOS token: the logits at position i predict token i + 1.
Input = token embedding + learned spatial embedding (h*w) + learned temporal embedding
(max_frames) [+ embedding of the previous frame's token at the same spatial position, that of the
input token or of the token being predicted (GPTConfig.prev_frame_token_position)]
[+ a projection of the ego's motion into the frame of the token being predicted
(GPTConfig.ego_motion_input; world_model/gpt/ego_motion.py): zero where the motion is unknown].
Blocks are pre-LayerNorm without affine parameters, without biases (by default), with a 4x GELU
MLP; the output head is tied to the token embedding.

Shape letters: B batch, T frames, L / n tokens, C n_embd, V vocab, nh heads, hd head dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from world_model.gpt.config import GPTConfig
from world_model.gpt.kv_cache import KVCache, StaticKVCache

IGNORE_INDEX = -100


@dataclass(frozen=True)
class GPTOutput:
    """logits (B, L, V) float: position i scores token i + 1; loss: mean next-token CE or None."""

    logits: torch.Tensor
    loss: torch.Tensor | None


def _layer_norm(n_embd: int) -> nn.LayerNorm:
    return nn.LayerNorm(n_embd, elementwise_affine=False)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_index: int) -> None:
        super().__init__()
        self.layer_index = layer_index
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        # muP: 1/hd keeps attention logits O(1) as hd grows (q.k grows like hd once q, k align).
        self.scale = 1.0 / config.head_dim if config.mup else None  # None: SDPA's 1/sqrt(hd)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | StaticKVCache | None, attn_mask: torch.Tensor | None) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three nh hd) -> three b nh n hd", three=3, nh=self.n_head)  # each (B, nh, n, hd)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_index, k, v)  # (B, nh, cached + n, hd)
        # A mask is needed only when new queries follow cached keys; otherwise plain causal (flash on GPU).
        is_causal = attn_mask is None and q.shape[2] > 1
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0, scale=self.scale
        )  # (B, nh, n, hd)
        y = rearrange(y, "b nh n hd -> b n (nh hd)")  # (B, n, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))  # (B, n, C)


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_index: int) -> None:
        super().__init__()
        self.ln_attn = _layer_norm(config.n_embd)
        self.attn = CausalSelfAttention(config, layer_index)
        self.ln_mlp = _layer_norm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | StaticKVCache | None, attn_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln_attn(x), kv_cache, attn_mask)
        return x + self.mlp(self.ln_mlp(x))  # (B, n, C)


class GPT(nn.Module):
    """Next-token GPT over flattened (t, h, w) token grids; see the module docstring."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.token_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.spatial_emb = nn.Embedding(c.tokens_per_frame, c.n_embd)
        self.temporal_emb = nn.Embedding(c.max_frames, c.n_embd)
        # Index vocab_size is the learned "no previous frame" entry used for the first frame.
        self.prev_token_emb = nn.Embedding(c.vocab_size + 1, c.n_embd) if c.prev_frame_token_input else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c, i) for i in range(c.n_layer))
        self.ln_f = _layer_norm(c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.token_emb.weight
        # muP: logits shrink as 1/width_mult so a wider model's outputs keep the base model's scale.
        self.output_mult = 1.0 / c.width_mult if c.mup else 1.0
        self._init_weights()
        # Created after every other parameter and initialised to zero, without drawing random numbers:
        # the other weights are those of the model without the input at the same seed, and until it
        # is trained (or whenever motions are unknown) the model is that model exactly. The gradient
        # of a zero input projection is not zero, so it learns from the first step.
        self.ego_motion_emb: nn.Linear | None = None
        if c.ego_motion_input:
            self.ego_motion_emb = nn.Linear(3, c.n_embd, bias=True, device="meta").to_empty(device=self.token_emb.weight.device)
            nn.init.zeros_(self.ego_motion_emb.weight)
            nn.init.zeros_(self.ego_motion_emb.bias)
            self.register_buffer("ego_motion_scale", torch.tensor(c.ego_motion_scale), persistent=False)  # (3,)

    def _init_weights(self) -> None:
        c = self.config
        # Hidden matrices: std 0.02 at the muP base width, 1/sqrt(fan_in) scaling beyond it.
        hidden_std = 0.02 / math.sqrt(c.width_mult) if c.mup else 0.02
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and module is not self.lm_head:
                std = hidden_std / math.sqrt(2 * c.n_layer) if name.endswith(".proj") else hidden_std
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if not c.tie_weights:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Number of distinct parameters (a tied head counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, tokens: torch.Tensor, targets: torch.Tensor | None = None, ego_motion: torch.Tensor | None = None,
        warped_prev: torch.Tensor | None = None,
    ) -> GPTOutput:
        """tokens (B, T, h, w) int64 with T <= max_frames.

        ego_motion: None, or (B, T', 3) float motions into frames 0..T'-1 (NaN = unknown, and so is
        every frame at or past T'; see world_model/gpt/ego_motion.py); frame T's motion, when given
        (T' = T + 1), reaches the last position. Ignored by a model without ego_motion_input.

        warped_prev: None, or (B, T'', h, w) int64: for frame f >= 1, the tokens of frame f - 1 warped
        on the ground plane by the motion into frame f, -1 where unknown (row 0 is never read); used
        as the previous-frame token by a model with prev_frame_warp (GPTConfig), ignored otherwise.

        targets: None, or a grid like `tokens` (usually `tokens` itself) scored with a one-token
        shift: logits at position i against target i + 1 in (t, h, w) order; IGNORE_INDEX (-100)
        entries are skipped (e.g. to score only the last frame).
        """
        c = self.config
        if tokens.ndim != 4 or tuple(tokens.shape[2:]) != (c.tokens_h, c.tokens_w):
            raise ValueError(f"GPT.forward: tokens must be (B, T, {c.tokens_h}, {c.tokens_w}), got {tuple(tokens.shape)}")
        tokens_flat = rearrange(tokens, "b t h w -> b (t h w)")  # (B, L)
        logits = self.forward_flat(tokens_flat, ego_motion=ego_motion, warped_prev=self._flat_warped(warped_prev, tokens.shape[0]))  # (B, L, V)
        loss = None
        if targets is not None:
            if targets.shape != tokens.shape:
                raise ValueError(f"GPT.forward: targets shape {tuple(targets.shape)} != tokens shape {tuple(tokens.shape)}")
            targets_flat = rearrange(targets, "b t h w -> b (t h w)")  # (B, L)
            loss = F.cross_entropy(
                rearrange(logits[:, :-1], "b n v -> (b n) v").float(),
                rearrange(targets_flat[:, 1:], "b n -> (b n)"),
                ignore_index=IGNORE_INDEX,
            )
        return GPTOutput(logits=logits, loss=loss)

    def forward_flat(
        self, tokens_flat: torch.Tensor, kv_cache: KVCache | None = None, only_last_logits: bool = False, last_logits: int | None = None,
        ego_motion: torch.Tensor | None = None, warped_prev: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits for a flattened sequence tokens_flat (B, n) that starts at frame 0, position 0.

        With a `kv_cache` holding the first `kv_cache.length` tokens of this same sequence, only
        the remaining n - length tokens are run (and appended to the cache). Returns logits
        (B, n_new, V), or (B, 1, V) for the last position only when `only_last_logits`, or those of
        the last `last_logits` positions (B, last_logits, V). ego_motion (B, T', 3): motions into
        the frames of the sequence (see `forward`); frames at or past T' count as unknown.
        warped_prev (B, n') int64: the warped previous-frame tokens flattened like the sequence
        (`flat_warped_prev`; -1 = unknown, positions at or past n' too).
        """
        c = self.config
        batch, n = tokens_flat.shape
        start = 0 if kv_cache is None else kv_cache.length
        if n > c.max_tokens:
            raise ValueError(f"GPT: sequence of {n} tokens exceeds the context of {c.max_frames} frames ({c.max_tokens} tokens)")
        if start >= n:
            raise ValueError(f"GPT: no new tokens to run ({start} cached, sequence of {n})")
        x = self.drop(self._embed(tokens_flat, start, ego_motion, warped_prev))  # (B, n_new, C)
        attn_mask = None
        if start > 0 and n - start > 1:
            # New queries at positions start..n-1 see every cached key and the new keys up to themselves.
            query_pos = torch.arange(start, n, device=x.device)[:, None]  # (n_new, 1)
            key_pos = torch.arange(n, device=x.device)[None, :]  # (1, n)
            attn_mask = key_pos <= query_pos  # (n_new, n) bool, True = attend
        for block in self.blocks:
            x = block(x, kv_cache, attn_mask)  # (B, n_new, C)
        if kv_cache is not None:
            kv_cache.advance(n - start)
        if only_last_logits or last_logits is not None:
            x = x[:, -(1 if only_last_logits else last_logits) :]  # (B, 1 or last_logits, C)
        return self.lm_head(self.ln_f(x)) * self.output_mult  # (B, n_new or 1, V)

    def forward_positions(
        self, sequence: torch.Tensor, positions: torch.Tensor, cache: StaticKVCache, ego_motion: torch.Tensor | None = None,
        warped_prev: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, K, V) for the tokens sequence[:, positions] at positions (K,) int64, fixed shapes.

        sequence (B, n_slots) int64 holds every token up to the largest position (the previous
        frame's tokens are read from it); `cache` holds the keys/values of the earlier positions
        and receives these. Positions may run past the context into padding slots (their
        embeddings are clamped; their logits mean nothing). Every call with the same B and K has
        the same shapes, so the step can be compiled once (world_model/gpt/static_step.py).
        ego_motion (B, T', 3): motions into the frames of `sequence` (see `forward`); warped_prev
        (B, n') flattened like `sequence` (see `forward_flat`).
        """
        x = self._embed_at(sequence, positions, ego_motion, warped_prev)  # (B, K, C)
        attn_mask = cache.attention_mask(positions)  # (K, n_slots)
        cache.positions = positions
        for block in self.blocks:
            x = block(x, cache, attn_mask)  # (B, K, C)
        cache.positions = None
        return self.lm_head(self.ln_f(x)) * self.output_mult  # (B, K, V)

    def _flat_warped(self, warped_prev: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """(B, T, h, w) warped previous-frame tokens -> (B, T*h*w), checked; None stays None."""
        if warped_prev is None:
            return None
        c = self.config
        if warped_prev.ndim != 4 or warped_prev.shape[0] != batch or tuple(warped_prev.shape[2:]) != (c.tokens_h, c.tokens_w) or warped_prev.dtype != torch.int64:
            raise ValueError(f"GPT: warped_prev must be int64 (B={batch}, T, {c.tokens_h}, {c.tokens_w}) (-1 = unknown), got {tuple(warped_prev.shape)} {warped_prev.dtype}")
        return rearrange(warped_prev, "b t h w -> b (t h w)")

    def _embed(
        self, tokens_flat: torch.Tensor, start: int, ego_motion: torch.Tensor | None = None, warped_prev: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Input embeddings (B, n - start, C) of tokens_flat[:, start:]."""
        return self._embed_at(tokens_flat, torch.arange(start, tokens_flat.shape[1], device=tokens_flat.device), ego_motion, warped_prev)

    def _embed_at(
        self, tokens_flat: torch.Tensor, positions: torch.Tensor, ego_motion: torch.Tensor | None = None, warped_prev: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Input embeddings (B, K, C) of tokens_flat[:, positions] for positions (K,) int64 (and the
        motions ego_motion (B, T', 3) into the sequence's frames, NaN = unknown; the warped previous
        frame's tokens warped_prev (B, n') flattened like tokens_flat, -1 = unknown)."""
        c = self.config
        hw = c.tokens_per_frame
        x = self.token_emb(tokens_flat[:, positions])  # (B, K, C)
        frame_index = (positions // hw).clamp(max=c.max_frames - 1)  # padding slots past the context
        x = x + self.spatial_emb(positions % hw) + self.temporal_emb(frame_index)  # (B, K, C)
        if self.prev_token_emb is not None:
            # Same spatial position, previous frame: of the input token i, or of the predicted token i + 1.
            prev_positions = positions + (1 if c.prev_frame_token_position == "target" else 0) - hw
            prev_tokens = tokens_flat[:, prev_positions.clamp(min=0, max=tokens_flat.shape[1] - 1)]  # (B, K)
            prev_tokens = torch.where(prev_positions >= 0, prev_tokens, c.vocab_size)  # "none" for frame 0
            if c.prev_frame_warp and warped_prev is not None and warped_prev.shape[1] > 0:
                # The token at the predicted place of the previous frame warped into this one, where known.
                target = positions + 1  # (K,)
                warped = warped_prev[:, target.clamp(max=warped_prev.shape[1] - 1)]  # (B, K)
                known = (warped >= 0) & ((target >= hw) & (target < warped_prev.shape[1]))[None]  # (B, K)
                prev_tokens = torch.where(known, warped.clamp(max=c.vocab_size - 1), prev_tokens)
            x = x + self.prev_token_emb(prev_tokens)
        if self.ego_motion_emb is not None and ego_motion is not None:
            x = x + self._ego_motion_embedding(ego_motion, positions, tokens_flat.shape[0])
        return x

    def _ego_motion_embedding(self, ego_motion: torch.Tensor, positions: torch.Tensor, batch: int) -> torch.Tensor:
        """(B, K, C): at position i the projected motion into the frame of token i + 1 (the token it
        predicts), exactly zero where that motion is unknown (NaN, frame 0, or past ego_motion)."""
        if ego_motion.ndim != 3 or ego_motion.shape[0] != batch or ego_motion.shape[2] != 3 or not ego_motion.is_floating_point():
            raise ValueError(f"GPT: ego_motion must be float (B={batch}, T, 3) [dx_forward_m, dy_left_m, dyaw_rad], got {tuple(ego_motion.shape)} {ego_motion.dtype}")
        n_motion_frames = ego_motion.shape[1]
        target_frame = (positions + 1) // self.config.tokens_per_frame  # (K,)
        motion = ego_motion[:, target_frame.clamp(max=n_motion_frames - 1)]  # (B, K, 3)
        in_range = (target_frame >= 1) & (target_frame < n_motion_frames)  # (K,) frame 0 has no motion into it
        known = torch.isfinite(motion).all(dim=-1) & in_range  # (B, K)
        scaled = torch.where(known[..., None], motion, 0.0) / self.ego_motion_scale  # (B, K, 3)
        embedding = self.ego_motion_emb(scaled.to(self.ego_motion_emb.weight.dtype))  # (B, K, C)
        return torch.where(known[..., None], embedding, 0.0)

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW parameter groups: weight decay on 2-D weights only; muP LR scaling when enabled.

        Without muP: "decay" (2-D) and "no_decay" (1-D) groups at `lr`. With muP (Adam rules):
        hidden matrices (both dims grow with width, i.e. the block Linear weights) get
        lr / width_mult, and weight_decay * width_mult so the per-step decay lr * wd stays
        width-independent; embeddings and the (tied) head are vector-like and keep `lr`.
        Empty groups are dropped. Each group carries a "name" for logging.
        """
        mult = self.config.width_mult if self.config.mup else 1.0
        hidden, vector_like, no_decay = [], [], []
        for name, p in self.named_parameters():  # a tied head is yielded once, as token_emb.weight
            if not p.requires_grad:
                continue
            if p.ndim < 2:
                no_decay.append(p)
            elif name.startswith("blocks."):
                hidden.append(p)
            else:
                vector_like.append(p)
        groups = [
            {"name": "hidden", "params": hidden, "lr": lr / mult, "weight_decay": weight_decay * mult},
            {"name": "embedding", "params": vector_like, "lr": lr, "weight_decay": weight_decay},
            {"name": "no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0},
        ]
        return [g for g in groups if g["params"]]
