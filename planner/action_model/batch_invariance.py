"""Row results that do not depend on the batch: one episode planned alone gets the plan it gets in a batch.

The action model's per-episode inputs (ego status: one row per episode) go through a linear layer
whose number of rows is the number of episodes, 1 in the unbatched closed loop and N in a batched one.
torch's fp32 CPU `linear` does not sum a row the same way for every number of rows: on an Intel Xeon
a single row took a matrix-vector kernel (5e-7 off on a 9 -> 64 projection) while 2, 3, 6 or 2,304 rows
agreed exactly; on an AMD EPYC (oneMKL 2024.2 likewise) 1, 2 and 3 rows each differ from 4 or more (up to
4e-7). A batched run would then not repeat the unbatched one. Without autocast each output element is
therefore its own reduction over the row's features (a broadcast product and a sum over the last
dimension: the same operations on every row, for any number of rows). Under autocast (bf16) the
product runs in oneDNN's low-precision kernels, which measured batch-invariant on both CPUs; there a lone
row still goes through as two identical rows (the matrix-matrix kernel), as the trained bf16 planners ran.
"""

from __future__ import annotations

import torch
from torch import nn


def batch_invariant_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """layer(x) for x (..., F_in) -> (..., F_out), each row's result the same for any number of rows."""
    if torch.is_autocast_enabled(x.device.type):
        if x.numel() != x.shape[-1]:
            return layer(x)
        two = layer(x.reshape(1, -1).repeat(2, 1))  # (2, F_out): the matrix-matrix kernel, as in a batch
        return two[:1].reshape(*x.shape[:-1], two.shape[-1])
    y = (x.unsqueeze(-2) * layer.weight).sum(dim=-1)  # (..., F_out): one reduction over F_in per output
    return y if layer.bias is None else y + layer.bias
