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
from data.settings import check_int, check_real
from foresight.training.precision import resolve_precision

LOGGERS = ("csv", "tensorboard", "wandb")
WANDB_MODES = ("offline", "online", "disabled")  # online only when asked for: a run must not need the network
MONITORS = ("lr", "throughput")
STRATEGIES = ("auto", "ddp", "fsdp", "ddp_spawn")


@dataclass(frozen=True)
class TrainerSettings:
    """accelerator: auto | cpu | gpu; devices: auto | N | [ids]; num_nodes: machines (under torchrun
    / SLURM); strategy: STRATEGIES (fsdp shards the stage's blocks, `fsdp_sharding` SHARD_GRAD_OP ~
    ZeRO-2 or FULL_SHARD); precision: auto (`foresight.training.precision.resolve_precision`) or any
    Lightning precision; threads: torch CPU threads of the process (None: torch's default);
    accumulate_grad_batches: batches whose gradients make one optimizer step (max_steps, the
    schedule and every cadence count optimizer steps; each step sees batch_size x devices x this
    many samples); loggers: LOGGERS (`wandb_mode` offline, online or disabled; `wandb_project`);
    monitors: MONITORS logged to the loggers (learning rate of every parameter group, samples and
    tokens per second); progress_bar: one rich bar over all steps with ETA; keep_checkpoints:
    periodic checkpoints kept besides last.ckpt and final.ckpt (the newest N, removed by
    foresight/training/checkpointing.py; -1: all); ckpt_path: a checkpoint of this stage to resume from instead of the
    newest in out/checkpoints (None: the newest); ema_decay: exponential moving average of the
    weights, updated every optimizer step, used for validation and exported (None: off);
    overwrite: a run in `out` that cannot be resumed as asked (another config, no readable
    checkpoint) is replaced by a fresh run instead of refused."""

    accelerator: str
    devices: Any
    num_nodes: int
    strategy: str
    precision: str
    threads: int | None
    fsdp_sharding: str
    accumulate_grad_batches: int
    loggers: tuple[str, ...]
    wandb_mode: str
    wandb_project: str
    monitors: tuple[str, ...]
    progress_bar: bool
    keep_checkpoints: int
    ckpt_path: str | None
    ema_decay: float | None
    overwrite: bool

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"trainer.strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.num_nodes < 1:
            raise ValueError(f"trainer.num_nodes must be >= 1, got {self.num_nodes}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"trainer.threads must be >= 1 or null, got {self.threads}")
        check_int("trainer.accumulate_grad_batches", self.accumulate_grad_batches, 1)
        for key, chosen, known in (("loggers", self.loggers, LOGGERS), ("monitors", self.monitors, MONITORS)):
            bad = sorted(set(chosen) - set(known))
            if bad:
                raise ValueError(f"trainer.{key}: unknown {bad}; choose from {known}")
        if self.wandb_mode not in WANDB_MODES:
            raise ValueError(f"trainer.wandb_mode must be one of {WANDB_MODES} (online only when asked for), got {self.wandb_mode!r}")
        if self.keep_checkpoints < -1 or self.keep_checkpoints == 0:
            raise ValueError(f"trainer.keep_checkpoints must be -1 (all) or >= 1, got {self.keep_checkpoints}")
        if self.ckpt_path is not None and (not isinstance(self.ckpt_path, str) or not self.ckpt_path):
            raise ValueError(f"trainer.ckpt_path must be the path of a checkpoint or null, got {self.ckpt_path!r}")
        if self.ema_decay is not None:
            check_real("trainer.ema_decay (e.g. 0.999, or null: off)", self.ema_decay, 0, 1, low_open=True, high_open=True)
            if self.strategy == "fsdp":
                raise ValueError("trainer.ema_decay: the moving average needs the whole weights on every process; it does not work with strategy=fsdp")

    @property
    def resolved_precision(self) -> str:
        """The Lightning precision this machine trains at (see `resolve_precision`)."""
        return resolve_precision(self.precision, self.accelerator)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "TrainerSettings":
        return build(cls, values, "trainer")
