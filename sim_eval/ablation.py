"""`foresight eval ablation`: the same planner with observed, imagined and no video in closed loop.

Each row (`AblationVariant`) is a planner source run on the same suites, seeds and runner settings
as the others; `foresight.closed_loop.ablation_variants` says how the rows are made from a
checkpoint (observed: the checkpoint as trained; imagine: imagined frames too; no_video: ego status
and command only; plus baselines for reference).

Writes DIR/metrics.json (`ablation.<variant>.<suite>.{score, ncap_score, collision_rate,
failure_rate, plan_latency_ms_mean}`, and `ncap.<variant>`: the NeuroNCAP mean over the NCAP suites
run), DIR/ablation.md (the same as a table) and each run's own metrics under DIR/runs/<variant>/<suite>/.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from data.store.manifest import atomic_write_text
from sim_eval.evaluate import PlannerSource, evaluate
from sim_eval.runner import RunnerConfig


@dataclass(frozen=True)
class AblationVariant:
    """One row: its name ("observed", "imagine", "no_video", a baseline), the planner it runs, how
    that planner was obtained (for the report) and the episodes run in lockstep per process
    (`evaluate`'s batch_size)."""

    name: str
    source: PlannerSource
    description: str
    batch_size: int


@dataclass(frozen=True)
class AblationCell:
    """One variant on one suite."""

    score: float
    ncap_score: float | None
    collision_rate: float
    failure_rate: float
    plan_latency_ms_mean: float | None


def ablation_table(results: dict[str, dict[str, AblationCell]], descriptions: dict[str, str], suites: list[str],
                   ncap: dict[str, float | None]) -> str:
    """Markdown: one row per variant, per suite "score / NCAP / collision rate" (NCAP only on NCAP suites)."""
    head = "| variant | " + " | ".join(suites) + " | NCAP mean |"
    lines = [head, "|" + "---|" * (len(suites) + 2)]
    for variant, per_suite in results.items():
        cells = []
        for suite in suites:
            r = per_suite[suite]
            ncap_part = "" if r.ncap_score is None else f" / NCAP {r.ncap_score:.2f}"
            cells.append(f"{r.score:.3f}{ncap_part} / coll {r.collision_rate:.2f}")
        mean = ncap.get(variant)
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {'' if mean is None else f'{mean:.2f}'} |")
    notes = "\n".join(f"- {name}: {text}" for name, text in descriptions.items())
    return ("Cells: nuPlan-style score (0-1) / NeuroNCAP score (0-5, NCAP suites) / collision rate.\n\n"
            + "\n".join(lines) + "\n\nVariants:\n" + notes + "\n")


def run_ablation(variants: list[AblationVariant], suites: list[str], episodes: int, seed: int, out: str | Path,
                 runner_cfg: RunnerConfig, workers: int = 1, videos: int = 0) -> dict[str, Any]:
    """Run every variant on every suite; writes metrics.json and ablation.md (module docstring); returns metrics.json's content."""
    out = Path(out)
    if not suites:
        raise ValueError("eval ablation: `suites` is empty")
    results: dict[str, dict[str, AblationCell]] = {}
    for v in variants:
        results[v.name] = {}
        for suite in suites:
            run = evaluate(v.source, suite, episodes, seed, out / "runs" / v.name / suite, runner_cfg, workers, videos, v.batch_size)
            m = run.metrics
            results[v.name][suite] = AblationCell(m.score, m.ncap_score, m.collision_rate, m.failure_rate, run.plan_latency_ms_mean)
    ncap: dict[str, float | None] = {}
    for name, per_suite in results.items():
        values = [r.ncap_score for r in per_suite.values() if r.ncap_score is not None]
        ncap[name] = sum(values) / len(values) if values else None
    descriptions = {v.name: v.description for v in variants}
    metrics = {
        "ablation": {name: {suite: asdict(cell) for suite, cell in per_suite.items()} for name, per_suite in results.items()},
        "ncap": ncap, "variants": descriptions, "suites": suites, "episodes": episodes, "seed": seed, "runner": asdict(runner_cfg),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1, allow_nan=False))
    table = ablation_table(results, descriptions, suites, ncap)
    atomic_write_text(out / "ablation.md", f"# Planner ablation ({episodes} episodes per suite, seed {seed})\n\n" + table)
    print(table + f"wrote {out / 'metrics.json'} and {out / 'ablation.md'}")
    return metrics
