"""Random-number-generator state in Lightning checkpoints, so a resumed run draws what the
uninterrupted one would have drawn (dropout, flow-matching noise).

The CPU generator, every CUDA device's generator (restored only onto the same number of devices)
and any named extra `torch.Generator` (e.g. the planner's flow-noise generator) are saved under
checkpoint["rng_states"]. Single process; each DDP rank would need its own. `RngStateCheckpoint`
does it for every stage trained by `foresight.training.train_stage`; a LightningModule names its
own generators in a `checkpointed_generators` mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

CHECKPOINT_KEY = "rng_states"


def save_rng_states(checkpoint: dict[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Store the global CPU/CUDA RNG states and the named `generators` in `checkpoint`."""
    rng: dict[str, Any] = {"torch_cpu": torch.get_rng_state()}
    for name, generator in (generators or {}).items():
        rng[name] = generator.get_state()
    if torch.cuda.is_available():
        rng["torch_cuda"] = torch.cuda.get_rng_state_all()
    checkpoint[CHECKPOINT_KEY] = rng


def load_rng_states(checkpoint: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore what `save_rng_states` stored (a checkpoint without it is left alone)."""
    rng = checkpoint.get(CHECKPOINT_KEY)
    if rng is None:
        return
    torch.set_rng_state(rng["torch_cpu"])
    for name, generator in (generators or {}).items():
        if name not in rng:
            raise ValueError(f"checkpoint has no RNG state for {name!r} (has {sorted(rng)})")
        generator.set_state(rng[name])
    if "torch_cuda" in rng and torch.cuda.is_available() and len(rng["torch_cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["torch_cuda"])


class RngStateCheckpoint(Callback):
    """Saves and restores the RNG states (and the module's `checkpointed_generators`) with every checkpoint."""

    @staticmethod
    def _generators(pl_module: L.LightningModule) -> Mapping[str, torch.Generator]:
        return getattr(pl_module, "checkpointed_generators", None) or {}

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        save_rng_states(checkpoint, self._generators(pl_module))

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        load_rng_states(checkpoint, self._generators(pl_module))
