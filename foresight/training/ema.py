"""An exponential moving average of a stage's weights (trainer.ema_decay), through Lightning's
WeightAveraging callback: updated after every optimizer step, swapped in for validation, copied
into the module when fit ends (so the stage exports the averaged weights). Checkpoints hold the
averaged weights as their state_dict (what evaluation reads) and the trained ones as
current_model_state, so a resumed run goes on exactly."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging


def ema_update(decay: float):
    """The averaging function of AveragedModel: averaged <- decay * averaged + (1 - decay) * current
    for floating-point tensors; integer and boolean buffers (quantizer levels, flags) are not
    averaged but follow the trained module."""

    def update(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        if not averaged.is_floating_point():
            return current
        return averaged.lerp(current.to(averaged.dtype), 1.0 - decay)

    return update


class ExponentialMovingAverage(WeightAveraging):
    """EMA of every parameter and floating-point buffer of the module with `decay` per optimizer step
    (the first update copies the weights). The module gets the averaged weights when fit ends, also
    when a resumed run had no step left to train (Lightning's own callback copies them only after
    training steps ran)."""

    def __init__(self, decay: float) -> None:
        super().__init__(use_buffers=True, avg_fn=ema_update(decay))
        self.decay = decay

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass  # see on_fit_end

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._average_model is not None:
            self._copy_average_to_current(pl_module)
