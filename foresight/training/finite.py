"""Non-finite numbers stop a run instead of being trained on and exported: a NaN or inf anywhere in
a stage's config is refused before work starts, naming the key; a non-finite training loss or
weights stop training, naming the step, before a checkpoint of that state is written."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class NonFiniteTrainingError(ValueError):
    """Training met a NaN or inf loss or weights and stopped; the checkpoints written before are the
    last finite states. (A ValueError: commands report it as one line and exit 1.)"""


def non_finite_keys(config: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """(dotted key, value) of every NaN or infinite float in a nested mapping / list config, e.g.
    ("world_model.betas[1]", inf)."""
    if isinstance(config, Mapping):
        for key, value in config.items():
            yield from non_finite_keys(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(config, (list, tuple)):
        for i, value in enumerate(config):
            yield from non_finite_keys(value, f"{prefix}[{i}]")
    elif isinstance(config, float) and not math.isfinite(config):
        yield prefix, config


def require_finite(config: Mapping[str, Any], what: str) -> None:
    """ValueError naming every key of `config` whose value is a NaN or infinite float."""
    bad = list(non_finite_keys(config))
    if bad:
        listed = ", ".join(f"{key}={value}" for key, value in bad)
        raise ValueError(f"{what}: every number must be finite, got {listed}")


class FiniteTrainingGuard(Callback):
    """Stops training with `NonFiniteTrainingError` when the loss of a step or the weights are not
    finite: the loss before its backward pass (a step that made the weights non-finite shows in the
    next loss), the weights before every checkpoint is written (so no checkpoint, last.ckpt
    included, ever holds non-finite weights; checked there only, as it costs a pass over every
    weight). Every process takes the same decision (any process's bad value stops all of them)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    @staticmethod
    def _any_process(trainer: L.Trainer, bad: bool) -> bool:
        return bool(trainer.strategy.reduce_boolean_decision(bad, all=False))

    def _check_weights(self, trainer: L.Trainer, module: L.LightningModule, when: str) -> None:
        params = [p.detach() for p in module.parameters() if p.numel() > 0]
        bad = bool(params) and not bool(torch.isfinite(torch.nn.utils.get_total_norm(params)))
        if self._any_process(trainer, bad):
            raise NonFiniteTrainingError(
                f"{self.stage}: the weights are not finite after step {trainer.global_step} ({when}); training stopped. "
                f"The checkpoints before it are kept and nothing was exported; a lower learning rate may help"
            )

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        if self._any_process(trainer, bad):
            value = float(loss.detach().float().sum()) if bad else "not finite on another process"
            raise NonFiniteTrainingError(
                f"{self.stage}: the training loss is {value} at step {trainer.global_step + 1}; training stopped before its update. "
                f"The checkpoints before it are kept and nothing was exported; a lower learning rate may help"
            )

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._check_weights(trainer, pl_module, "its checkpoint was not written")
