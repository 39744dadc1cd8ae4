"""A callback that records how the training loop set Lightning up, for tests of the `trainer` group."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback


class TrainerProbe(Callback):
    """After fit starts: the strategy class, devices per node, world size and precision."""

    def __init__(self) -> None:
        self.seen: dict[str, object] = {}

    def on_fit_start(self, trainer, pl_module) -> None:
        self.seen = {"strategy": type(trainer.strategy).__name__, "devices": trainer.num_devices, "world_size": trainer.world_size,
                     "precision": str(trainer.precision)}
