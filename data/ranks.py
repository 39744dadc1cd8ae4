"""This process's share of a multi-process launch (torchrun or SLURM), and the journal file it keeps.

Every resumable multi-rank job (`foresight data <source>`, `foresight data tokenize`) splits its
work the same way: rank r of W takes the units whose index i has i % W == r, journals what it
finished into `manifest.part-<rank>.json`, and one final step unions the journals into
`manifest.json`. When torch.distributed is initialised (or can be: torchrun sets MASTER_ADDR and
MASTER_PORT) that step is rank 0's, after a barrier; ranks launched as separate jobs (a SLURM
array) leave it to a later merge command.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

PART_GLOB = "manifest.part-*.json"


def part_name(rank: int) -> str:
    """Journal file of one rank of a multi-rank job."""
    return f"manifest.part-{rank:04d}.json"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


@dataclass(frozen=True)
class DistEnv:
    """rank of world_size processes (0 of 1 when not launched by torchrun or SLURM); local_rank:
    the process's index on its machine (picks the GPU)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside world size {self.world_size} (check RANK/WORLD_SIZE or SLURM_PROCID/SLURM_NTASKS)")

    @classmethod
    def from_environ(cls) -> "DistEnv":
        """torchrun's RANK / WORLD_SIZE / LOCAL_RANK, else SLURM's SLURM_PROCID / SLURM_NTASKS /
        SLURM_LOCALID (srun tasks), else SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN /
        SLURM_ARRAY_TASK_COUNT (an array job whose tasks each run one rank), else rank 0 of 1."""
        for rank_var, world_var, local_var in (
            ("RANK", "WORLD_SIZE", "LOCAL_RANK"),
            ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
            ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", None),
        ):
            rank, world = _env_int(rank_var), _env_int(world_var)
            if rank is not None and rank_var == "SLURM_ARRAY_TASK_ID":
                rank -= _env_int("SLURM_ARRAY_TASK_MIN") or 0  # --array=1-8 numbers its tasks from 1
            if rank is not None and world is not None and world > 1:
                local = _env_int(local_var) if local_var else None
                return cls(rank, world, rank if local is None else local)
        return cls(0, 1, _env_int("LOCAL_RANK") or 0)

    def owns(self, index: int) -> bool:
        """Whether unit `index` of the job is this rank's to do."""
        return index % self.world_size == self.rank


@contextlib.contextmanager
def process_group(env: DistEnv, timeout: timedelta | None = None) -> Iterator[bool]:
    """Yields whether the ranks can synchronise (torch.distributed initialised). Initialises a gloo
    group for the block when the launcher made that possible (MASTER_ADDR and MASTER_PORT set,
    several ranks) and none exists yet. timeout: how long a barrier may wait for the slowest rank
    (None: torch's default)."""
    own = False
    if env.world_size > 1 and "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ:
        import torch.distributed as dist

        if dist.is_available() and not dist.is_initialized():
            kwargs = {} if timeout is None else {"timeout": timeout}
            dist.init_process_group(backend="gloo", rank=env.rank, world_size=env.world_size, **kwargs)
            own = True
    try:
        yield synchronised()
    finally:
        if own:
            import torch.distributed as dist

            dist.destroy_process_group()


def synchronised() -> bool:
    """True when torch.distributed is initialised in this process (imports torch only if loaded)."""
    import sys

    if "torch.distributed" not in sys.modules:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    import torch.distributed as dist

    dist.barrier()
