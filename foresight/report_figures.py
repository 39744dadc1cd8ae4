"""The demo report's figures (PNG files): the closed-loop summary with standard errors, a still strip
per episode video, the world-model rollouts as an image grid, and the training curves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sim_eval.render.video import side_by_side  # noqa: E402

# (metric, its standard-error key, panel title, axis top)
SUMMARY_PANELS = (
    ("score", "score_stderr", "closed-loop score (0-1)", 1.0),
    ("ncap_score", "ncap_score_stderr", "NCAP score (0-5)", 5.0),
)


@dataclass(frozen=True)
class SummaryBar:
    """One bar of the summary figure: `metric` of `planner` on `suite`; value None = "n/a" (the
    score does not apply to the suite, or the run is missing), never drawn as 0."""

    metric: str
    planner: str
    suite: str
    value: float | None
    stderr: float | None


def summary_bars(closed_loop: dict[str, dict[str, dict[str, Any]]]) -> list[SummaryBar]:
    """Every (metric, planner, suite) of the summary figure, from metrics.json's closed_loop section."""
    suites = list(dict.fromkeys(s for runs in closed_loop.values() for s in runs))
    bars = []
    for key, err_key, _, _ in SUMMARY_PANELS:
        for planner, runs in closed_loop.items():
            for suite in suites:
                run = runs.get(suite) or {}
                value = run.get(key)
                bars.append(SummaryBar(key, planner, suite, None if value is None else float(value), run.get(err_key) if value is not None else None))
    return bars


def plot_closed_loop_summary(closed_loop: dict[str, dict[str, dict[str, Any]]], out_png: Path) -> Path | None:
    """Bars of every planner on every suite, one panel per score, with +-1 standard error of the
    per-episode mean; "n/a" where the score does not apply (the NCAP score of a non-NCAP suite) or
    the run is missing. None when no closed-loop run exists."""
    if not closed_loop:
        return None
    bars = summary_bars(closed_loop)
    planners = list(closed_loop)
    suites = list(dict.fromkeys(b.suite for b in bars))
    width = 0.8 / len(planners)
    colours = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(1, len(SUMMARY_PANELS), figsize=(5.6 * len(SUMMARY_PANELS), 3.6))
    for ax, (key, _, title, top) in zip(axes, SUMMARY_PANELS):
        for bar in (b for b in bars if b.metric == key):
            i, j = planners.index(bar.planner), suites.index(bar.suite)
            x = j - 0.4 + width * (i + 0.5)
            if bar.value is None:
                ax.text(x, 0.02 * top, "n/a", ha="center", va="bottom", rotation=90, fontsize=8, color="0.45")
                continue
            ax.bar(x, bar.value, width, color=colours[i % len(colours)], label=bar.planner, yerr=bar.stderr, capsize=3, error_kw={"elinewidth": 1})
            ax.text(x, min(bar.value + (bar.stderr or 0), top) + 0.015 * top, f"{bar.value:.2f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(suites)), suites, fontsize=9)
        ax.set_xlim(-0.5, len(suites) - 0.5)
        ax.set_ylim(0, top * 1.12)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    by_label = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(by_label.values(), by_label.keys(), loc="upper center", ncol=max(1, len(by_label)), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def read_video(path: Path) -> tuple[np.ndarray, float]:
    """(T, H, W, 3) uint8 frames and the frame rate [Hz] of a video file."""
    import imageio.v3 as iio

    frames = iio.imread(path, plugin="pyav")
    fps = float(iio.immeta(path, plugin="pyav").get("fps") or 10.0)
    return frames, fps


def _label(frame: np.ndarray, text: str, band_px: int = 16) -> np.ndarray:
    """The frame under a white band with `text` in it."""
    band = np.full((band_px, frame.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (3, band_px - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, frame], axis=0)


def video_strip(video: Path, out_png: Path, max_frames: int = 4, max_width_px: int = 2000) -> Path:
    """A still strip of `video`: up to `max_frames` frames evenly spaced from the first to the last
    (fewer for wide frames, to stay under `max_width_px`), side by side, each under its time [s]."""
    frames, fps = read_video(video)
    n = max(2, min(max_frames, max_width_px // max(1, frames.shape[2]), len(frames)))
    picks = np.unique(np.linspace(0, len(frames) - 1, n).round().astype(int))
    strip = side_by_side(*[_label(frames[i], f"t = {i / fps:.1f} s") for i in picks], gap_px=4, fill_rgb=(255, 255, 255))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    return out_png


def world_model_rollout_grid(videos: list[Path], out_png: Path) -> Path | None:
    """The world-model evaluation's rollout videos as one image grid: a row per held-out window, a
    column per frame. Each video frame is the truth (left) beside the world model (right) under a
    bar, green for context frames (through the tokenizer) and red for predicted ones; the column
    titles read the bar. None without videos."""
    rollouts = [read_video(v)[0] for v in videos]
    if not rollouts:
        return None
    n_cols = max(len(r) for r in rollouts)
    cell_h, cell_w = rollouts[0].shape[1:3]
    fig, axes = plt.subplots(len(rollouts), n_cols, figsize=(2.4 * n_cols, len(rollouts) * (2.4 * cell_h / cell_w + 0.3) + 0.3), squeeze=False)
    for r, frames in enumerate(rollouts):
        context = [int(f[1, :, 1].mean()) > int(f[1, :, 0].mean()) for f in frames]  # green bar: context
        for c in range(n_cols):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(frames):
                continue
            ax.imshow(frames[c])
            if r == 0:
                k = c - sum(context) + 1  # frames after the last context frame t
                title = (f"context t{k - 1:+d}" if k < 1 else "context t") if context[c] else f"predicted t+{k}"
                ax.set_title(title, fontsize=8, color="tab:green" if context[c] else "tab:red")
        axes[r, 0].text(-0.03, 0.5, videos[r].stem, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=7, rotation=90)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def plot_training_curves(runs: dict[str, dict[str, list[tuple[float, float]]]], out_png: Path) -> Path | None:
    """One panel per training run ({run: {metric: [(step, value), ...]}}): its loss curves (train
    and val) against the step. None when no run logged a loss."""
    found = {k: v for k, v in runs.items() if any("loss" in m for m in v)}
    if not found:
        return None
    fig, axes = plt.subplots(1, len(found), figsize=(4.2 * len(found), 3.2), squeeze=False)
    for ax, (stage, series) in zip(axes[0], found.items()):
        for name, points in sorted(series.items()):
            if "loss" not in name or "/" in name.split("loss", 1)[1]:
                continue
            steps, values = zip(*points)
            ax.plot(steps, values, label=name, marker="." if len(points) < 30 else None)
        ax.set_title(stage)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def plot_dagger_rounds(rounds: list[dict[str, Any]], out_png: Path) -> Path | None:
    """The planner's closed-loop validation score per DAgger round (round 0: as trained) with +-1
    standard error bars, from OUT/dagger/rounds.json's rows. None without a scored round."""
    scored = [r for r in rounds if r.get("validation_score") is not None]
    if not scored:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    x = [int(r["round"]) for r in scored]
    ax.errorbar(x, [r["validation_score"] for r in scored], yerr=[r.get("validation_score_stderr") or 0.0 for r in scored], marker="o", capsize=3)
    ax.set_xticks(x)
    ax.set_xlabel("DAgger round (0: as trained)")
    ax.set_ylabel("validation score (0-1)")
    ax.set_ylim(0.0, 1.0)
    ax.set_title("planner, closed loop on training-seed episodes", fontsize=9)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
