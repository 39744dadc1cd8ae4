"""Flow-matching regression loss: mean squared error between predicted and target velocities."""

from __future__ import annotations

import torch


def flow_matching_loss(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of (predicted - target)^2 over all elements, or over the elements where `mask` is true.

    predicted, target: (..., D) velocities. mask: bool/float over a leading part of their shape
    (e.g. (B, K) valid waypoints for (B, K, D) velocities); a masked-out entry contributes nothing.
    With an all-false mask the loss is 0 (and still differentiable).
    """
    if predicted.shape != target.shape:
        raise ValueError(f"flow_matching_loss: predicted {tuple(predicted.shape)} and target {tuple(target.shape)} differ")
    squared = (predicted.float() - target.float()).square()
    if mask is None:
        return squared.mean()
    if mask.ndim > squared.ndim or tuple(mask.shape) != tuple(squared.shape[: mask.ndim]):
        raise ValueError(f"flow_matching_loss: mask shape {tuple(mask.shape)} must be a leading part of {tuple(squared.shape)}")
    weights = mask.reshape(*mask.shape, *([1] * (squared.ndim - mask.ndim))).to(squared.dtype).expand_as(squared)
    return (squared * weights).sum() / weights.sum().clamp(min=1.0)
