"""`foresight eval ablation`: the same planner with observed, imagined and no video in closed loop.

Each row (`AblationVariant`) is a planner source run on the same suites, seeds and runner settings
as the others; `foresight.closed_loop.ablation_variants` says how the rows are made from a
checkpoint (observed: the checkpoint as trained; imagine: imagined frames too; no_video: ego status
and command only; plus baselines for reference).

Writes DIR/metrics.json (`ablation.<variant>.<suite>.{score, ncap_score, collision_rate,
failure_rate, plan_latency_ms_mean, num_episodes, score_stderr, ncap_score_stderr}`;
`ncap.<variant>`: the NeuroNCAP mean over the NCAP suites run; `paired_vs_observed.<variant>.<suite>`:
the per-episode gain over the observed row with its standard error), DIR/ablation.md (the same as a table) and each run's own metrics under DIR/runs/<variant>/<suite>/.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from data.store.manifest import atomic_write_text
from sim_eval.evaluate import PlannerSource, evaluate
from sim_eval.metrics.paired import episode_values, mean_stderr, paired_gain
from sim_eval.runner import RunnerConfig

REFERENCE_VARIANT = "observed"  # the row every other one is paired against


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
    num_episodes: int = 0
    score_stderr: float | None = None
    ncap_score_stderr: float | None = None


def _pm(value: float, stderr: float | None, digits: int) -> str:
    return f"{value:.{digits}f}" + ("" if stderr is None else f" +- {stderr:.{digits}f}")


def ablation_table(results: dict[str, dict[str, AblationCell]], descriptions: dict[str, str], suites: list[str],
                   ncap: dict[str, float | None], paired: dict[str, dict[str, dict[str, Any]]] | None = None) -> str:
    """Markdown: one row per variant, per suite "score / NCAP / collision rate / paired gain over
    observed" (+- one standard error; NCAP only on NCAP suites)."""
    paired = paired or {}
    head = "| variant | " + " | ".join(suites) + " | NCAP mean |"
    lines = [head, "|" + "---|" * (len(suites) + 2)]
    for variant, per_suite in results.items():
        cells = []
        for suite in suites:
            r = per_suite[suite]
            ncap_part = "" if r.ncap_score is None else f" / NCAP {_pm(r.ncap_score, r.ncap_score_stderr, 2)}"
            gain = paired.get(variant, {}).get(suite)
            gain_part = "" if gain is None else f" / vs {REFERENCE_VARIANT} {gain['gain']:+.2f} +- {gain['stderr']:.2f}"
            cells.append(f"{_pm(r.score, r.score_stderr, 3)}{ncap_part} / coll {r.collision_rate:.2f}{gain_part}")
        mean = ncap.get(variant)
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {'' if mean is None else f'{mean:.2f}'} |")
    notes = "\n".join(f"- {name}: {text}" for name, text in descriptions.items())
    return ("Cells: nuPlan-style score (0-1) / NeuroNCAP score (0-5, NCAP suites) / collision rate / paired per-episode gain over "
            f"the {REFERENCE_VARIANT} row (NCAP score on NCAP suites, else score); +- one standard error.\n\n"
            + "\n".join(lines) + "\n\nVariants:\n" + notes + "\n")


def paired_vs_reference(out: Path, results: dict[str, dict[str, AblationCell]], suites: list[str],
                        reference: str = REFERENCE_VARIANT) -> dict[str, dict[str, dict[str, Any]]]:
    """variant -> suite -> paired per-episode gain over `reference` (same episodes): NCAP score on the
    NCAP suites, the score elsewhere; {"metric", "gain", "stderr", "episodes"}. Empty without the reference row."""
    if reference not in results:
        return {}
    paired: dict[str, dict[str, dict[str, Any]]] = {}
    for name, per_suite in results.items():
        if name == reference:
            continue
        for suite in suites:
            key = "ncap_score" if per_suite[suite].ncap_score is not None else "score"
            gain = paired_gain(out / "runs" / name / suite / "episodes.csv", out / "runs" / reference / suite / "episodes.csv", key)
            if gain is not None:
                paired.setdefault(name, {})[suite] = {"metric": key, **gain}
    return paired


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
            run_dir = out / "runs" / v.name / suite
            run = evaluate(v.source, suite, episodes, seed, run_dir, runner_cfg, workers, videos, v.batch_size)
            m = run.metrics
            stderr = {k: mean_stderr(list(episode_values(run_dir / "episodes.csv", k).values())) for k in ("score", "ncap_score")}
            results[v.name][suite] = AblationCell(m.score, m.ncap_score, m.collision_rate, m.failure_rate, run.plan_latency_ms_mean,
                                                  episodes, stderr["score"], stderr["ncap_score"] if m.ncap_score is not None else None)
    ncap: dict[str, float | None] = {}
    for name, per_suite in results.items():
        values = [r.ncap_score for r in per_suite.values() if r.ncap_score is not None]
        ncap[name] = sum(values) / len(values) if values else None
    descriptions = {v.name: v.description for v in variants}
    paired = paired_vs_reference(out, results, suites)
    metrics = {
        "ablation": {name: {suite: asdict(cell) for suite, cell in per_suite.items()} for name, per_suite in results.items()},
        "ncap": ncap, "paired_vs_observed": paired, "variants": descriptions, "suites": suites, "episodes": episodes, "seed": seed,
        "runner": asdict(runner_cfg),
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1, allow_nan=False))
    table = ablation_table(results, descriptions, suites, ncap, paired)
    atomic_write_text(out / "ablation.md", f"# Planner ablation ({episodes} episodes per suite, seed {seed})\n\n" + table)
    print(table + f"wrote {out / 'metrics.json'} and {out / 'ablation.md'}")
    return metrics
