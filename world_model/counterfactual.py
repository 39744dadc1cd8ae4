"""Counterfactual rollouts: one context, several ego manoeuvres, what the world model expects to see.

A manoeuvre is a sequence of future ego motions per frame step (world_model/gpt/ego_motion.py:
[dx_forward_m, dy_left_m, dyaw_rad] from each frame to the next, in the ego frame of the earlier one),
built from the context's last known motion so that every manoeuvre starts at the speed the ego had:
  keep_lane:  the last motion repeated (same speed, same curvature: follows a constant-radius lane);
  turn_left / turn_right: the same speed on an arc of TURN_RADIUS_M to the left / right;
  brake:      decelerating at BRAKE_DECEL_MPS2 to a stop along the current curvature.
All manoeuvres of one context are rolled out in one batch (greedy: deterministic).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from world_model.gpt.generate import TokenWarper, rollout
from world_model.gpt.model import GPT
from world_model.gpt.sampling import SamplingConfig

MANEUVERS = ("keep_lane", "turn_left", "turn_right", "brake")
COUNTERFACTUAL_PNG = "counterfactual.png"  # the strip `foresight eval world_model` writes into its output dir
TURN_RADIUS_M = 15.0
BRAKE_DECEL_MPS2 = 4.0


def arc_motion(distance_m: float, curvature_per_m: float) -> np.ndarray:
    """(3,) [dx_forward_m, dy_left_m, dyaw_rad] after driving `distance_m` on an arc of signed
    curvature (positive: to the left) from the ego's pose."""
    dyaw = distance_m * curvature_per_m
    if abs(curvature_per_m) < 1e-9:
        return np.array([distance_m, 0.0, 0.0])
    return np.array([math.sin(dyaw) / curvature_per_m, (1.0 - math.cos(dyaw)) / curvature_per_m, dyaw])


def maneuver_motions(maneuver: str, last_motion: np.ndarray, n_frames: int, frame_dt_s: float) -> np.ndarray:
    """(n_frames, 3) float32 future motions of `maneuver` (see the module docstring), starting from
    `last_motion` (3,): the context's motion into its last frame (NaN-free)."""
    last = np.asarray(last_motion, dtype=np.float64)
    if last.shape != (3,) or not np.isfinite(last).all():
        raise ValueError(f"maneuver_motions: last_motion must be 3 finite numbers, got {last_motion!r}")
    if n_frames < 1 or not frame_dt_s > 0:
        raise ValueError(f"maneuver_motions: need n_frames >= 1 and frame_dt_s > 0, got {n_frames}, {frame_dt_s}")
    step_m = float(math.hypot(last[0], last[1]))  # distance per frame step at the current speed
    curvature = float(last[2] / step_m) if step_m > 1e-3 else 0.0
    if maneuver == "keep_lane":
        out = [arc_motion(step_m, curvature)] * n_frames
    elif maneuver in ("turn_left", "turn_right"):
        out = [arc_motion(step_m, (1.0 if maneuver == "turn_left" else -1.0) / TURN_RADIUS_M)] * n_frames
    elif maneuver == "brake":
        speed, out = step_m / frame_dt_s, []
        for _ in range(n_frames):
            new_speed = max(0.0, speed - BRAKE_DECEL_MPS2 * frame_dt_s)
            stop_s = frame_dt_s if new_speed > 0 else speed / BRAKE_DECEL_MPS2
            out.append(arc_motion(0.5 * (speed + new_speed) * stop_s, curvature))
            speed = new_speed
    else:
        raise ValueError(f"unknown manoeuvre {maneuver!r}; known: {', '.join(MANEUVERS)}")
    return np.stack(out).astype(np.float32)


@torch.no_grad()
def counterfactual_rollouts(
    model: GPT,
    context_tokens: torch.Tensor,
    context_motion: torch.Tensor,
    n_future: int,
    frame_dt_s: float,
    maneuvers: tuple[str, ...] = MANEUVERS,
    context_warped: torch.Tensor | None = None,
    warper: TokenWarper | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Greedy rollouts of every manoeuvre from one context.

    context_tokens (1, Tc, h, w) int64; context_motion (Tc, 3) float: the motions into the context
    frames (NaN = unknown; the last one must be known: it sets the speed). Returns the tokens
    (M, n_future, h, w) int64 in `maneuvers` order and their motions (M, n_future, 3) float32.
    A model with GPTConfig.prev_frame_warp also takes the context's warped previous-frame tokens
    context_warped (1, Tc, h, w) (-1 = unknown) and a `warper` that warps each frame by the manoeuvre's
    motion into the next (world_model/warp_tokens.py): every manoeuvre then starts from its own warp.
    """
    if not model.config.ego_motion_input:
        raise ValueError("counterfactual rollouts need an ego-motion-conditioned world model (model.ego_motion_input: true)")
    if context_tokens.ndim != 4 or context_tokens.shape[0] != 1:
        raise ValueError(f"counterfactual_rollouts: context_tokens must be (1, Tc, h, w), got {tuple(context_tokens.shape)}")
    n_context = context_tokens.shape[1]
    if tuple(context_motion.shape) != (n_context, 3):
        raise ValueError(f"counterfactual_rollouts: context_motion must be ({n_context}, 3), got {tuple(context_motion.shape)}")
    last = context_motion[-1].double().cpu().numpy()
    future = np.stack([maneuver_motions(m, last, n_future, frame_dt_s) for m in maneuvers])  # (M, F, 3)
    motion = torch.cat(
        [context_motion.float().cpu()[None].expand(len(maneuvers), -1, -1), torch.from_numpy(future)], dim=1
    ).to(context_tokens.device)  # (M, Tc + F, 3)
    warped = None if context_warped is None else context_warped.expand(len(maneuvers), -1, -1, -1)  # (M, Tc, h, w); the future's from the warper
    tokens = rollout(
        model, context_tokens.expand(len(maneuvers), -1, -1, -1), n_future, SamplingConfig.greedy(), ego_motion=motion, warped_prev=warped, warper=warper
    )
    return tokens, future


def save_counterfactual_strip(context_frame: np.ndarray, frames: dict[str, np.ndarray], motions: dict[str, np.ndarray], frame_dt_s: float,
                              out_png: str | Path) -> Path:
    """One image: a row per manoeuvre, its first cell the last context frame (H, W, 3) uint8, then
    its imagined frames (F, H, W, 3) uint8 under their times; each row is labelled with its name and
    the distance and heading change its motions (F, 3) add up to."""
    from matplotlib.figure import Figure  # no pyplot: drawing must not switch the caller's backend (notebooks)

    names = list(frames)
    n_future = max(len(f) for f in frames.values())
    h, w = context_frame.shape[:2]
    fig = Figure(figsize=(2.2 * (n_future + 1), len(names) * (2.2 * h / w + 0.35) + 0.2))
    axes = fig.subplots(len(names), n_future + 1, squeeze=False)
    for r, name in enumerate(names):
        cells = [context_frame, *frames[name]]
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c < len(cells):
                ax.imshow(cells[c])
            if r == 0:
                ax.set_title("context t" if c == 0 else f"imagined t+{c} ({c * frame_dt_s:.1f} s)", fontsize=8,
                             color="tab:green" if c == 0 else "tab:red")
        m = motions[name]
        label = f"{name}\n{float(np.hypot(m[:, 0], m[:, 1]).sum()):.1f} m, {np.degrees(float(m[:, 2].sum())):+.0f} deg"
        axes[r, 0].text(-0.04, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return out_png
