"""The checkpoints a training run writes: every N optimizer steps (`epoch=E-step=N.ckpt`, with the
optimizer state) and last.ckpt, keeping only the newest `keep` periodic ones (trainer.keep_checkpoints)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from foresight.training.resume import periodic_checkpoints


class PeriodicCheckpoints(ModelCheckpoint):
    """Lightning's ModelCheckpoint every `every_n_train_steps` steps plus last.ckpt, keeping the
    newest `keep` periodic checkpoints in `dirpath` (by the step in their names; -1: all).

    Retention is done here rather than with Lightning's save_top_k over a monitored "step": with a
    monitored metric, Lightning defers the save at an epoch's last batch (every checkpoint here)
    until after validation, which would validate weights the loop has not yet checked to be finite.
    A checkpoint written again at the same step (a run going on from an older checkpoint) replaces
    the file instead of adding a -v1 copy."""

    def __init__(self, dirpath: Path, every_n_train_steps: int, keep: int) -> None:
        super().__init__(dirpath=dirpath, save_last=True, every_n_train_steps=every_n_train_steps, save_top_k=-1, enable_version_counter=False)
        if keep < -1 or keep == 0:
            raise ValueError(f"PeriodicCheckpoints: keep must be -1 (all) or >= 1, got {keep}")
        self.keep = keep

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if self.keep != -1 and trainer.is_global_zero:
            for old in periodic_checkpoints(Path(self.dirpath))[self.keep :]:
                self._remove_checkpoint(trainer, str(old))
