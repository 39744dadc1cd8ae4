"""What every image tokenizer returns and offers: the contract the token store and the world model use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class TokenizerEncoding:
    """indices (B, h, w) int64 code ids; quantized (B, D, h, w) float32 code vectors (straight-through
    gradients in training); aux_loss () the quantiser's weighted training loss (0 at inference)."""

    indices: torch.Tensor
    quantized: torch.Tensor
    aux_loss: torch.Tensor

    def __post_init__(self) -> None:
        if self.quantized.ndim != 4 or tuple(self.indices.shape) != (self.quantized.shape[0], *self.quantized.shape[2:]):
            raise ValueError(
                f"quantized must be (B, D, h, w) and indices (B, h, w); got {tuple(self.quantized.shape)} "
                f"and {tuple(self.indices.shape)}"
            )
        if self.indices.dtype != torch.int64:
            raise ValueError(f"indices must be int64, got {self.indices.dtype}")
        if self.aux_loss.ndim != 0:
            raise ValueError(f"aux_loss must be a scalar, got shape {tuple(self.aux_loss.shape)}")


@runtime_checkable
class ImageTokenizer(Protocol):
    """A frozen-at-use image tokenizer: images (B, 3, H, W) float in [-1, 1] <-> (B, H/f, W/f) codes."""

    @property
    def codebook_size(self) -> int: ...

    @property
    def downsample_factor(self) -> int: ...

    def encode(self, images: torch.Tensor) -> TokenizerEncoding: ...

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]:
        """JSON-able identity: architecture name and every setting needed to rebuild it."""
        ...


def check_images(images: torch.Tensor, factor: int) -> None:
    """Raise ValueError unless `images` is (B, 3, H, W) floating point with H and W multiples of `factor`."""
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"images must be (B, 3, H, W) float in [-1, 1], got {tuple(images.shape)} {images.dtype}")
    h, w = images.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"image size {h}x{w} is not a multiple of the tokenizer's downsampling factor {factor}")
