"""The checkpoints a training run writes: every N optimizer steps (`epoch=E-step=N.ckpt`, with the
optimizer state) and last.ckpt, keeping only the newest `keep` periodic ones (trainer.keep_checkpoints),
each written whole or not at all (`AtomicCheckpointIO`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from foresight.training.resume import periodic_checkpoints

PARTIAL_SUFFIX = ".partial"  # a checkpoint being written: `.<name>.<pid>.partial` beside it, never a *.ckpt


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, but a local checkpoint is written to a partial file in its own
    directory, flushed to disk and renamed over the target: a kill at any moment leaves either the
    previous file or the whole new one. (Lightning's own save writes the file in the temporary
    directory and moves it; when that directory is on another filesystem the move is a copy, and a kill
    during the copy leaves a cut-short checkpoint under the real name.) Remote paths (`s3://...`)
    keep Lightning's save."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO.save_checkpoint takes no storage_options, got {storage_options!r}")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}{PARTIAL_SUFFIX}")
        try:
            with open(partial, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_partial_writes(directory: Path) -> list[Path]:
    """Remove the partial files that writes cut short by a kill left in `directory`; returns them."""
    partial = sorted(Path(directory).glob(f".*{PARTIAL_SUFFIX}")) if Path(directory).is_dir() else []
    for path in partial:
        path.unlink(missing_ok=True)
    return partial


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
