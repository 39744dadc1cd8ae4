"""Key/value caches for incremental decoding with the video GPT.

KVCache grows by appending (a Python length; shapes change from call to call). StaticKVCache is
written at given positions into fixed-size storage, so every decode step has the same shapes and
can be captured by torch.compile / CUDA graphs (the gpt-fast recipe).
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of every layer for the first `length` tokens of a sequence.

    Storage is allocated on the first `update`, with that call's batch size, device and dtype
    (so it follows autocast), as (n_layer, B, n_head, max_len, head_dim) for keys and values.
    The model calls `update` once per layer with the new tokens' keys/values, then `advance`
    once the whole forward pass is done.
    """

    def __init__(self, n_layer: int, max_len: int) -> None:
        if n_layer < 1 or max_len < 1:
            raise ValueError(f"KVCache needs n_layer >= 1 and max_len >= 1, got {n_layer}, {max_len}")
        self.n_layer = n_layer
        self.max_len = max_len
        self.length = 0
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the cached tokens (storage is kept for reuse)."""
        self.length = 0

    def truncate(self, length: int) -> None:
        """Keep only the first `length` cached tokens (speculative decoding drops rejected draft tokens)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"KVCache.truncate: length must be in [0, {self.length}], got {length}")
        self.length = length

    def update(self, layer: int, k_new: torch.Tensor, v_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the keys/values (B, nh, n, hd) of the n new tokens after the cached ones.

        Returns the keys and values (B, nh, length + n, hd) of all tokens so far for this layer.
        """
        batch, n_head, n_new, head_dim = k_new.shape
        end = self.length + n_new
        if end > self.max_len:
            raise ValueError(f"KVCache overflow: {self.length} cached + {n_new} new tokens > max_len {self.max_len}")
        if self._keys is None or self._keys.shape[1:3] != (batch, n_head) or self._keys.shape[-1] != head_dim or self._keys.dtype != k_new.dtype or self._keys.device != k_new.device:
            if self.length > 0:
                raise ValueError("KVCache: batch/heads/dtype/device changed while tokens are cached; call reset() first")
            shape = (self.n_layer, batch, n_head, self.max_len, head_dim)
            self._keys = torch.empty(shape, dtype=k_new.dtype, device=k_new.device)
            self._values = torch.empty(shape, dtype=v_new.dtype, device=v_new.device)
        assert self._values is not None
        self._keys[layer, :, :, self.length : end] = k_new
        self._values[layer, :, :, self.length : end] = v_new
        return self._keys[layer, :, :, :end], self._values[layer, :, :, :end]

    def advance(self, n_new: int) -> None:
        """Mark n_new more tokens as cached (after every layer has called `update`)."""
        if self.length + n_new > self.max_len:
            raise ValueError(f"KVCache overflow: advancing {self.length} by {n_new} > max_len {self.max_len}")
        self.length += n_new


class StaticKVCache:
    """Keys and values (n_layer, B, nh, n_slots, hd) written at explicit positions (K,) int64 tensors.

    Slot i holds the token at sequence position i. A query at position p attends to slots 0..p
    (`attention_mask`); whatever a slot beyond p holds (a rejected draft, padding) is never seen
    by it, so rejecting draft tokens needs no truncation. Storage is allocated once, up front.
    """

    def __init__(self, n_layer: int, batch: int, n_head: int, n_slots: int, head_dim: int, dtype: torch.dtype, device: torch.device) -> None:
        if min(n_layer, batch, n_head, n_slots, head_dim) < 1:
            raise ValueError(f"StaticKVCache needs positive sizes, got {(n_layer, batch, n_head, n_slots, head_dim)}")
        shape = (n_layer, batch, n_head, n_slots, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.slot_positions = torch.arange(n_slots, device=device)  # (n_slots,)
        self.positions: torch.Tensor | None = None  # (K,) positions of the tokens of the running step

    def attention_mask(self, positions: torch.Tensor) -> torch.Tensor:
        """(K, n_slots) bool, True where the query at positions[i] may attend to the slot."""
        return self.slot_positions[None, :] <= positions[:, None]

    def update(self, layer: int, k_new: torch.Tensor, v_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write keys/values (B, nh, K, hd) at `self.positions`; returns all slots (B, nh, n_slots, hd)."""
        if self.positions is None:
            raise ValueError("StaticKVCache.update: no positions set for this step")
        self.keys[layer].index_copy_(2, self.positions, k_new.to(self.keys.dtype))
        self.values[layer].index_copy_(2, self.positions, v_new.to(self.values.dtype))
        return self.keys[layer], self.values[layer]
