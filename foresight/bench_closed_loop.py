"""`foresight bench closed_loop`: episodes per second of the closed loop, one episode at a time
against lockstep batches (one `plan_batch` call per tick), on the same episodes in the same run.

Prints one JSON object: episodes_per_s_unbatched / _batched and batched_ratio (wall time of each
evaluation, planner loading included), plan_latency_ms_unbatched / _batched (the mean time an
episode waited for its plan; a batched episode waits for the whole batch), scores_identical and
max_score_difference (per-episode scores of the two runs), the batch size, the planner and the CPU.
"""

from __future__ import annotations

import json
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch

from configs import plain
from foresight.closed_loop import batch_size, runner_config
from foresight.planners import planner_batched, planner_options, planner_source
from sim_eval.evaluate import evaluate


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(cfg: Any) -> dict[str, Any]:
    d = plain(cfg)
    name = str(d["planner"])
    options = planner_options(name, d)
    episodes, workers = int(d["episodes"]), int(d["workers"])
    batch = batch_size(d["batch_size"], planner_batched(name), options, episodes, workers)
    runner = runner_config(d["runner"], options.get("checkpoint") if name == "vam" else None)
    source = planner_source(name, options)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(d["out"] or scratch)
        runs = {key: evaluate(source, str(d["suite"]), episodes, int(d["seed"]), out / key, runner, workers, 0, size)
                for key, size in (("unbatched", 1), ("batched", batch))}
    single, batched = runs["unbatched"], runs["batched"]
    differences = [abs(a["score"] - b["score"]) for a, b in zip(single.metrics.episodes, batched.metrics.episodes)]
    result = {
        "planner": name, "suite": single.suite, "episodes": episodes, "workers": workers, "batch_size": batch,
        "device": str(options.get("device") or "cpu"), "cpu": cpu_model(), "torch_threads": torch.get_num_threads(),
        "episodes_per_s_unbatched": episodes / single.wall_time_s,
        "episodes_per_s_batched": episodes / batched.wall_time_s,
        "batched_ratio": single.wall_time_s / batched.wall_time_s,
        "plan_latency_ms_unbatched": single.plan_latency_ms_mean,
        "plan_latency_ms_batched": batched.plan_latency_ms_mean,
        "score_unbatched": single.metrics.score, "score_batched": batched.metrics.score,
        "scores_identical": max(differences) == 0.0, "max_score_difference": max(differences),
    }
    print(json.dumps(result, indent=1))
    return result
