"""The `trainer` config group (configs/trainer/*.yaml): where and how every training stage runs.

The tokenizer, the world model and the planner all train through `foresight.training.train_stage`,
which reads these settings and nothing else about the hardware; the stage profiles say only what
to train and for how long.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from configs import build
from foresight.training.precision import resolve_precision

LOGGERS = ("csv", "wandb")
WANDB_MODES = ("offline", "disabled")  # never online: runs must not need the network
STRATEGIES = ("auto", "ddp", "fsdp", "ddp_spawn")


@dataclass(frozen=True)
class TrainerSettings:
    """accelerator: auto | cpu | gpu; devices: auto | N | [ids]; num_nodes: machines (under torchrun
    / SLURM); strategy: STRATEGIES (fsdp shards the stage's blocks, `fsdp_sharding` SHARD_GRAD_OP ~
    ZeRO-2 or FULL_SHARD); precision: auto (`foresight.training.precision.resolve_precision`) or any
    Lightning precision; threads: torch CPU threads of the process (None: torch's default);
    loggers: csv and/or wandb (`wandb_mode` offline or disabled, never online; `wandb_project`);
    progress_bar: one rich bar over all steps with ETA; keep_checkpoints: periodic checkpoints kept
    besides last.ckpt (-1: all, N: the newest N); overwrite: a run in `out` that cannot be resumed as
    asked (another config, no readable checkpoint) is replaced by a fresh run instead of refused."""

    accelerator: str
    devices: Any
    num_nodes: int
    strategy: str
    precision: str
    threads: int | None
    fsdp_sharding: str
    loggers: tuple[str, ...]
    wandb_mode: str
    wandb_project: str
    progress_bar: bool
    keep_checkpoints: int
    overwrite: bool

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"trainer.strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.num_nodes < 1:
            raise ValueError(f"trainer.num_nodes must be >= 1, got {self.num_nodes}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"trainer.threads must be >= 1 or null, got {self.threads}")
        bad = sorted(set(self.loggers) - set(LOGGERS))
        if bad:
            raise ValueError(f"trainer.loggers: unknown {bad}; choose from {LOGGERS}")
        if self.wandb_mode not in WANDB_MODES:
            raise ValueError(f"trainer.wandb_mode must be one of {WANDB_MODES} (runs never log online), got {self.wandb_mode!r}")
        if self.keep_checkpoints < -1 or self.keep_checkpoints == 0:
            raise ValueError(f"trainer.keep_checkpoints must be -1 (all) or >= 1, got {self.keep_checkpoints}")

    @property
    def resolved_precision(self) -> str:
        """The Lightning precision this machine trains at (see `resolve_precision`)."""
        return resolve_precision(self.precision, self.accelerator)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "TrainerSettings":
        return build(cls, values, "trainer")
