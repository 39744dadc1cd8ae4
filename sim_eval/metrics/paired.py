"""Standard errors of closed-loop means and paired per-episode gains between two runs.

Closed-loop scores are noisy; two planners run on the same episodes (same suite, scenario and seed:
same `episode_id`) are compared episode by episode, which removes the scenario-to-scenario spread
from the difference.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path


def mean_stderr(values: list[float | None]) -> float | None:
    """Standard error of the mean of the non-missing `values` (sample standard deviation / sqrt(n));
    None with fewer than 2 of them."""
    present = [float(v) for v in values if v is not None]
    return statistics.stdev(present) / len(present) ** 0.5 if len(present) >= 2 else None


def episode_values(episodes_csv: Path, key: str) -> dict[str, float]:
    """episode_id -> float(`key`) for every row of an episodes.csv whose `key` is not empty."""
    with Path(episodes_csv).open(newline="") as f:
        return {row["episode_id"]: float(row[key]) for row in csv.DictReader(f) if row.get(key) not in (None, "")}


def paired_gain(ours_csv: Path, baseline_csv: Path, key: str) -> dict[str, float] | None:
    """Mean and standard error of the per-episode difference `key`(ours) - `key`(baseline) over the
    episodes both runs share, from two episodes.csv files: {"gain", "stderr", "episodes"}; None when
    either file is missing or fewer than 2 episodes pair up."""
    if not (Path(ours_csv).is_file() and Path(baseline_csv).is_file()):
        return None
    ours, base = episode_values(ours_csv, key), episode_values(baseline_csv, key)
    diffs = [ours[e] - base[e] for e in ours if e in base]
    if len(diffs) < 2:
        return None
    return {"gain": statistics.fmean(diffs), "stderr": mean_stderr(diffs), "episodes": len(diffs)}
