"""`foresight eval ablation`: what the video is worth in closed loop.

    foresight eval ablation checkpoint=VAM_DIR out=DIR [suites=[nominal,ncap_stationary,...]] [episodes=N]

Variants (rows), each run on the same suites, seeds and runner settings:
  observed: the checkpoint as trained (observed frames only, when trained so);
  imagine:  observed + imagined frames. With `imagine_checkpoint=` a model trained in imagine mode;
            otherwise the SAME weights run in imagine mode: the world model first generates
            `n_imagined_frames` frames greedily and the expert attends to them in place of the
            oldest observed ones (the expert's weights fit every video mode; it was not trained on
            imagined frames, which is what this row measures);
  no_video: ego status and command only. With `no_video_checkpoint=` an action model trained with
            video_mode=none; otherwise the ego-status MLP exported beside the checkpoint (a video
            expert cannot simply drop its video: it never learned to plan without it).
plus the `baselines` (e.g. constant_velocity) for reference.

Writes DIR/metrics.json (`ablation.<variant>.<suite>.{score, ncap_score, collision_rate,
plan_latency_ms_mean}`, and `ncap.<variant>`: the NeuroNCAP mean over the NCAP suites run),
DIR/ablation.md (the same as a table) and each run's own metrics under DIR/runs/<variant>/<suite>/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from data.store.manifest import atomic_write_text
from sim_eval.evaluate import evaluate
from sim_eval.runner import RunnerConfig


@dataclass(frozen=True)
class AblationVariant:
    """One row: a registry planner name, its config, and how it was obtained (for the report)."""

    name: str
    planner: str
    planner_cfg: dict[str, Any]
    source: str


def ablation_variants(cfg: Mapping[str, Any]) -> list[AblationVariant]:
    """The rows for a config with checkpoint, imagine_checkpoint, no_video_checkpoint, n_imagined_frames, baselines."""
    from planner.action_model.checkpoint import vam_metadata
    from planner.ego_mlp import has_ego_mlp

    checkpoint = str(cfg["checkpoint"])
    mode = vam_metadata(checkpoint)["action_model"]["video_mode"]
    if mode == "none":
        raise ValueError(f"{checkpoint} is a no-video model; the ablation needs a video checkpoint (pass it as no_video_checkpoint=)")
    common = {"seed": int(cfg.get("seed", 0))}
    rows = [AblationVariant("observed", "vam", {**common, "checkpoint": checkpoint}, f"{checkpoint} (trained video_mode={mode})")]
    imagine = cfg.get("imagine_checkpoint")
    if imagine:
        rows.append(AblationVariant("imagine", "vam", {**common, "checkpoint": str(imagine)}, f"{imagine} (trained in imagine mode)"))
    else:
        n = int(cfg.get("n_imagined_frames", 1))
        rows.append(AblationVariant("imagine", "vam", {**common, "checkpoint": checkpoint, "video_mode": "imagine", "n_imagined_frames": n},
                                    f"{checkpoint} run in imagine mode ({n} imagined frame(s), same weights)"))
    no_video = cfg.get("no_video_checkpoint")
    if no_video:
        if vam_metadata(no_video)["action_model"]["video_mode"] != "none":
            raise ValueError(f"no_video_checkpoint {no_video} was not trained with video_mode=none")
        rows.append(AblationVariant("no_video", "vam", {**common, "checkpoint": str(no_video)}, f"{no_video} (trained with video_mode=none)"))
    elif has_ego_mlp(checkpoint):
        rows.append(AblationVariant("no_video", "ego_mlp", {"checkpoint": checkpoint}, f"ego-status MLP exported with {checkpoint}"))
    else:
        raise ValueError(f"{checkpoint} holds no ego_mlp.*; pass no_video_checkpoint= (a model trained with video_mode=none)")
    for name in cfg.get("baselines") or []:
        rows.append(AblationVariant(str(name), str(name), {"num_waypoints": int(cfg.get("num_waypoints", 6)), "plan_dt_s": float(cfg.get("plan_dt_s", 0.5))}, "baseline"))
    return rows


def ablation_table(results: dict[str, dict[str, dict[str, Any]]], sources: dict[str, str], suites: list[str], ncap: dict[str, float | None]) -> str:
    """Markdown: one row per variant, per suite "score / NCAP / collision rate" (NCAP only on NCAP suites)."""
    head = "| variant | " + " | ".join(suites) + " | NCAP mean |"
    lines = [head, "|" + "---|" * (len(suites) + 2)]
    for variant, per_suite in results.items():
        cells = []
        for suite in suites:
            r = per_suite[suite]
            ncap_part = "" if r["ncap_score"] is None else f" / NCAP {r['ncap_score']:.2f}"
            cells.append(f"{r['score']:.3f}{ncap_part} / coll {r['collision_rate']:.2f}")
        mean = ncap.get(variant)
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {'' if mean is None else f'{mean:.2f}'} |")
    notes = "\n".join(f"- {name}: {source}" for name, source in sources.items())
    return ("Cells: nuPlan-style score (0-1) / NeuroNCAP score (0-5, NCAP suites) / collision rate.\n\n"
            + "\n".join(lines) + "\n\nVariants:\n" + notes + "\n")


def run_ablation(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Run every variant on every suite; writes metrics.json and ablation.md (see the module docstring)."""
    out = Path(cfg["out"])
    suites = [str(s) for s in cfg["suites"]]
    if not suites:
        raise ValueError("eval ablation: `suites` is empty")
    episodes, seed, workers = int(cfg["episodes"]), int(cfg.get("seed", 0)), int(cfg.get("workers", 1))
    camera_period_s = cfg.get("camera_period_s")
    if camera_period_s is None:  # the frame spacing the planner was trained at
        from planner.action_model.checkpoint import vam_frame_period_s

        camera_period_s = vam_frame_period_s(str(cfg["checkpoint"]))
    runner_cfg = RunnerConfig(
        dt_s=float(cfg.get("dt_s", 0.1)), planner_period_s=float(cfg.get("planner_period_s", 0.5)), camera_period_s=float(camera_period_s),
        n_frames=int(cfg.get("n_frames", 4)),
        image_height=int(cfg.get("image_height", 64)), image_width=int(cfg.get("image_width", 128)), plan_timeout_s=float(cfg.get("plan_timeout_s", 30.0)),
    )
    variants = ablation_variants(cfg)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for v in variants:
        results[v.name] = {}
        for suite in suites:
            m = evaluate(v.planner, suite, episodes, seed, out / "runs" / v.name / suite, v.planner_cfg, runner_cfg, workers, videos=int(cfg.get("videos", 0)))
            results[v.name][suite] = {
                "score": m["score"], "ncap_score": m["ncap_score"], "collision_rate": m["collision_rate"],
                "failure_rate": m["submetrics"]["failure_rate"], "plan_latency_ms_mean": m["plan_latency_ms_mean"],
            }
    ncap = {}
    for name, per_suite in results.items():
        values = [r["ncap_score"] for r in per_suite.values() if r["ncap_score"] is not None]
        ncap[name] = sum(values) / len(values) if values else None
    sources = {v.name: v.source for v in variants}
    metrics = {"ablation": results, "ncap": ncap, "variants": sources, "suites": suites, "episodes": episodes, "seed": seed, "runner": runner_cfg.__dict__}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1, allow_nan=False))
    table = ablation_table(results, sources, suites, ncap)
    atomic_write_text(out / "ablation.md", f"# Planner ablation ({episodes} episodes per suite, seed {seed})\n\n" + table)
    print(table + f"wrote {out / 'metrics.json'} and {out / 'ablation.md'}")
    return metrics
