"""Discrete bottlenecks: finite scalar quantisation (FSQ) and a vector quantiser with an EMA codebook.

Both map channel-first latents (B, D, h, w) to a TokenizerEncoding: codes of the same shape plus
(B, h, w) int64 indices. They pass gradients straight through, and run in float32 even under autocast (a bf16 rounding or argmin
would flip codes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from world_model.tokenizer.encoding import TokenizerEncoding


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) with the identity's gradient; exact rounding when no gradient flows."""
    return x + (torch.round(x) - x).detach() if x.requires_grad else torch.round(x)


class FiniteScalarQuantizer(nn.Module):
    """FSQ (Mentzer et al. 2023): each of D = len(levels) channels is bounded with tanh and rounded
    to one of levels[d] integers; the code index is the mixed-radix number of those digits.

    prequant_penalty_weight * mean(relu(|z| - prequant_bound)^2) keeps encoder outputs out of tanh
    saturation, where rounding sends every value to the same extreme level and the codebook
    collapses (calibration: 18 of 1000 codes used without it and without the normalisation before
    the encoder's last projection; 999 with both).
    """

    def __init__(self, levels: tuple[int, ...], prequant_penalty_weight: float = 1e-2, prequant_bound: float = 2.0) -> None:
        super().__init__()
        if len(levels) == 0 or any(int(l) < 2 for l in levels):
            raise ValueError(f"FSQ levels must be integers >= 2, got {levels}")
        self.levels = tuple(int(l) for l in levels)
        self.prequant_penalty_weight = float(prequant_penalty_weight)
        self.prequant_bound = float(prequant_bound)
        levels_t = torch.tensor(self.levels, dtype=torch.float32)
        basis = torch.cumprod(torch.tensor((1,) + self.levels[:-1], dtype=torch.int64), dim=0)
        # persistent=False: derived from `levels`, so not part of the exported weights.
        self.register_buffer("_levels", levels_t, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    @property
    def code_dim(self) -> int:
        return len(self.levels)

    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        """(..., D) -> values in (-L/2, L/2) for odd L and (-L/2, L/2 - 1) for even L, before rounding."""
        eps = 1e-3
        half_l = (self._levels - 1) * (1 + eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def _half_width(self) -> torch.Tensor:
        return torch.div(self._levels, 2, rounding_mode="floor")

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., D) normalised codes in [-1, 1] -> (...,) int64 indices."""
        hw = self._half_width()
        digits = torch.round(codes * hw + hw).to(torch.int64)
        return (digits * self._basis).sum(dim=-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(...,) int64 indices in [0, codebook_size) -> (..., D) float32 normalised codes."""
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(f"FSQ indices must lie in [0, {self.codebook_size}), got [{int(indices.min())}, {int(indices.max())}]")
        digits = torch.remainder(torch.div(indices.unsqueeze(-1), self._basis, rounding_mode="floor"), self._levels.to(torch.int64))
        hw = self._half_width()
        return (digits.to(torch.float32) - hw) / hw

    def embed_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int64 -> (B, D, h, w) float32 codes."""
        return rearrange(self.indices_to_codes(indices), "b h w d -> b d h w")

    def forward(self, z: torch.Tensor) -> TokenizerEncoding:
        """z (B, D, h, w) -> codes in [-1, 1] and indices."""
        if z.shape[1] != self.code_dim:
            raise ValueError(f"FSQ with levels {self.levels} expects {self.code_dim} channels, got {z.shape[1]}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = rearrange(z.float(), "b d h w -> b h w d")
            codes = _round_ste(self._bound(z)) / self._half_width()
            indices = self.codes_to_indices(codes.detach())
            excess = F.relu(z.abs() - self.prequant_bound)
            aux = self.prequant_penalty_weight * (excess**2).mean()
        return TokenizerEncoding(indices=indices, quantized=rearrange(codes, "b h w d -> b d h w"), aux_loss=aux)


class EMAVectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantiser whose codebook follows an exponential moving average of
    the encoder outputs assigned to each code (van den Oord et al. 2017, appendix).

    The codebook is initialised from the first training batch, codes whose EMA usage falls below
    `dead_code_threshold` are restarted at random encoder outputs of the current batch, and the
    encoder is pulled towards its codes by `commitment_weight * ||z - sg(code)||^2`. Under
    torch.distributed the EMA statistics are summed over ranks so every rank keeps the same codebook.
    """

    def __init__(
        self,
        codebook_size: int,
        code_dim: int,
        decay: float = 0.99,
        commitment_weight: float = 0.25,
        dead_code_threshold: float = 1e-2,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if codebook_size < 2 or code_dim < 1 or not 0.0 < decay < 1.0:
            raise ValueError(f"invalid VQ settings: codebook_size={codebook_size}, code_dim={code_dim}, decay={decay}")
        self.codebook_size, self.code_dim = int(codebook_size), int(code_dim)
        self.decay, self.commitment_weight = float(decay), float(commitment_weight)
        self.dead_code_threshold, self.eps = float(dead_code_threshold), float(eps)
        embed = torch.randn(codebook_size, code_dim)
        self.register_buffer("codebook", embed)  # (K, D)
        self.register_buffer("cluster_size", torch.zeros(codebook_size))  # (K,) EMA of assignment counts
        self.register_buffer("embed_sum", embed.clone())  # (K, D) EMA of summed assigned vectors
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def _nearest(self, flat: torch.Tensor) -> torch.Tensor:
        # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2; ||z||^2 is the same for every code.
        dist_ = -2 * flat @ self.codebook.t() + (self.codebook**2).sum(dim=1)[None]  # (N, K)
        return dist_.argmin(dim=1)

    def embed_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int64 -> (B, D, h, w) float32 codebook vectors."""
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(f"VQ indices must lie in [0, {self.codebook_size}), got [{int(indices.min())}, {int(indices.max())}]")
        return rearrange(F.embedding(indices, self.codebook), "b h w d -> b d h w")

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        rows = flat[torch.randint(0, flat.shape[0], (self.codebook_size,), device=flat.device)]
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(rows, src=0)
        self.codebook.copy_(rows)
        self.embed_sum.copy_(rows)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        onehot = F.one_hot(indices, self.codebook_size).to(flat.dtype)  # (N, K)
        counts = onehot.sum(dim=0)  # (K,)
        sums = onehot.t() @ flat  # (K, D)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n  # Laplace smoothing
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_code_threshold
        if bool(dead.any()):
            fresh = flat[torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)]
            if dist.is_available() and dist.is_initialized():
                dist.broadcast(fresh, src=0)
            self.codebook[dead] = fresh
            self.embed_sum[dead] = fresh
            self.cluster_size[dead] = 1.0

    def forward(self, z: torch.Tensor) -> TokenizerEncoding:
        """z (B, D, h, w) -> nearest codebook vectors and indices; updates the codebook in training."""
        if z.shape[1] != self.code_dim:
            raise ValueError(f"VQ with code_dim {self.code_dim} expects {self.code_dim} channels, got {z.shape[1]}")
        b, _, h, w = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            flat = rearrange(z, "b d h w -> (b h w) d")
            if self.training and not bool(self.initialized):
                self._init_from(flat.detach())
            indices = self._nearest(flat.detach())
            if self.training:
                self._ema_update(flat.detach(), indices)
            codes = rearrange(F.embedding(indices, self.codebook), "(b h w) d -> b d h w", b=b, h=h, w=w)
            aux = self.commitment_weight * F.mse_loss(z, codes.detach())
            quantized = z + (codes - z).detach() if z.requires_grad else codes  # straight-through only when needed
        return TokenizerEncoding(indices=indices.view(b, h, w), quantized=quantized, aux_loss=aux)


@dataclass(frozen=True)
class CodeUsage:
    """How a batch of indices spreads over the codebook: codes used, their fraction of the
    codebook, and the perplexity exp(entropy of the code histogram) (= codebook size when uniform)."""

    num_used: int
    fraction_used: float
    perplexity: float


def code_usage(indices: torch.Tensor, codebook_size: int) -> CodeUsage:
    """Code usage of any-shaped int64 `indices` drawn from a codebook of `codebook_size`."""
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size).float()
    p = counts / counts.sum().clamp_min(1.0)
    nz = p[p > 0]
    used = int((counts > 0).sum())
    return CodeUsage(used, used / codebook_size, float(torch.exp(-(nz * nz.log()).sum())))
