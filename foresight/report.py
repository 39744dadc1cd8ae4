"""The demo's report: DIR/report.md and DIR/report.html (images embedded) from the stages' outputs.

Pictures first (the closed-loop summary with standard errors, a still strip per episode video, the
world-model rollouts, training curves, the exported notebooks), tables after. Every number comes
from a metrics.json that a stage wrote in this run; a section whose stage did not run says so
instead of showing anything made up.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import markdown

from foresight.report_figures import plot_closed_loop_summary, plot_dagger_rounds, plot_training_curves, video_strip, world_model_rollout_grid
from sim_eval.metrics.paired import mean_stderr, paired_gain
from sim_eval.scenarios.ncap import NCAP_SUITE_SIZES
from world_model.counterfactual import COUNTERFACTUAL_PNG

if TYPE_CHECKING:
    from foresight.demo import DemoPaths


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def read_run_metrics(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """Every Lightning CSVLogger file of a run (run_dir/logs/version_*/metrics.csv: one per resumed
    session) -> {metric: [(step, value), ...]} sorted by step."""
    series: dict[str, list[tuple[float, float]]] = {}
    for path in sorted(Path(run_dir).glob("logs/version_*/metrics.csv")):
        for name, points in read_csv_metrics(path).items():
            series.setdefault(name, []).extend(points)
    return {name: sorted(points) for name, points in series.items()}


def read_csv_metrics(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Lightning CSVLogger metrics.csv -> {metric: [(step, value), ...]} (empty cells skipped)."""
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            step = row.get("step")
            if step in (None, ""):
                continue
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                try:
                    series.setdefault(key, []).append((float(step), float(value)))
                except ValueError:
                    continue
    return series


SUBMETRIC_COLUMNS = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "making_progress",
    "ego_progress",
    "time_to_collision_within_bound",
    "speed_limit_compliance",
    "comfort",
    "failure_rate",
)
WORLD_MODEL_KEYS = (
    "psnr_t1", "psnr_copy_last_t1", "psnr_copy_last_raw_t1", "gain_vs_copy_last_t1", "gain_vs_copy_last_t1_stderr", "win_rate_vs_copy_last_t1",
    "psnr_t2", "psnr_copy_last_t2", "psnr_copy_last_raw_t2", "gain_vs_copy_last_t2", "gain_vs_copy_last_t2_stderr", "win_rate_vs_copy_last_t2",
    "ssim_t1", "ssim_copy_last_t1", "token_accuracy", "cross_entropy", "tokenizer_psnr", "num_windows",
    "gain_vs_copy_last_raw_t1", "gain_vs_copy_last_raw_t1_stderr", "gain_vs_copy_last_raw_t2", "gain_vs_copy_last_raw_t2_stderr",
    "psnr_uncond_t1", "psnr_uncond_t2", "gain_vs_uncond_t1", "gain_vs_uncond_t1_stderr", "gain_vs_uncond_t2", "gain_vs_uncond_t2_stderr",
    "psnr_warp_t1", "psnr_warp_t2", "gain_vs_warp_t1", "gain_vs_warp_t1_stderr", "gain_vs_warp_t2", "gain_vs_warp_t2_stderr",
    "num_windows_warp", "ego_motion_input",
)  # fmt: skip
DAGGER_KEYS = ("round", "beta", "episodes", "windows_added", "validation_score", "validation_score_stderr", "validation_collision_rate")
NCAP_SUITES = tuple(NCAP_SUITE_SIZES)  # ncap_stationary, ncap_frontal, ncap_side
OPEN_LOOP_KEYS = ("min_ade", "min_fde", "l2_1s", "l2_2s", "l2_3s", "collision_rate")


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def collect_metrics(paths: DemoPaths, profile: dict[str, Any], stage_seconds: dict[str, float]) -> dict[str, Any]:
    """Every number of the report, read from what the stages wrote (a stage that did not run is absent)."""
    metrics: dict[str, Any] = {"profile": profile.get("name"), "stage_seconds": stage_seconds, "total_seconds": sum(stage_seconds.values())}
    tok = _load(paths.tokenizer / "train_summary.json")
    if tok:
        metrics["tokenizer"] = {"steps": tok.get("steps"), "num_params": tok.get("num_params"), **(tok.get("eval") or {})}
    wm = _load(paths.world_model_eval / "metrics.json")
    if wm:
        metrics["world_model"] = {k: wm[k] for k in WORLD_MODEL_KEYS if wm.get(k) is not None}
    ol = _load(paths.open_loop / "metrics.json")
    if ol:
        metrics["open_loop"] = {name: {k: v.get(k) for k in OPEN_LOOP_KEYS} for name, v in ol["open_loop"].items()}
        metrics["open_loop_protocol"] = {"samples": ol.get("samples"), "n_windows": ol.get("n_windows"), "aggregate": ol.get("aggregate")}
    closed: dict[str, dict[str, Any]] = {}
    for planner in profile["closed_loop"]["planners"]:
        for suite in profile["closed_loop"]["suites"]:
            m = _load(paths.closed_loop(planner, suite) / "metrics.json")
            if m:
                episodes = m.get("episodes") or []
                closed.setdefault(planner, {})[suite] = {
                    "score": m["score"], "ncap_score": m["ncap_score"], "collision_rate": m["collision_rate"],
                    "score_stderr": mean_stderr([e.get("score") for e in episodes]),
                    "ncap_score_stderr": mean_stderr([e.get("ncap_score") for e in episodes]) if m["ncap_score"] is not None else None,
                    "num_episodes": m["num_episodes"], "plan_latency_ms_mean": m.get("plan_latency_ms_mean"),
                    "submetrics": m.get("submetrics", {}),
                }  # fmt: skip
    for suite, m in (closed.get("vam") or {}).items():  # the planner vs constant velocity, episode by episode
        key = "ncap_score" if m.get("ncap_score") is not None else "score"
        paired = paired_gain(paths.closed_loop("vam", suite) / "episodes.csv", paths.closed_loop("constant_velocity", suite) / "episodes.csv", key)
        if paired:
            m["paired_vs_constant_velocity"] = {"metric": key, **paired}
        if suite in closed.get("ego_mlp", {}):  # the same inputs without the camera: what the video is worth
            paired = paired_gain(paths.closed_loop("vam", suite) / "episodes.csv", paths.closed_loop("ego_mlp", suite) / "episodes.csv", key)
            if paired:
                m["paired_vs_ego_mlp"] = {"metric": key, **paired}
    if closed:
        metrics["closed_loop"] = closed
        average = ncap_average(closed)
        if average:
            metrics["ncap_average"] = average
    rounds = _load(paths.dagger_rounds_json)
    if rounds:
        metrics["dagger_rounds"] = [{k: r.get(k) for k in DAGGER_KEYS} for r in rounds]
    ab = _load(paths.ablation / "metrics.json")
    if ab:
        metrics["ablation"] = ab.get("ablation")
        if ab.get("paired_vs_observed"):
            metrics["ablation_paired_vs_observed"] = ab["paired_vs_observed"]
    metrics["verdict"] = verdict(metrics)
    return metrics


def ncap_average(closed: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per planner that ran every NCAP suite: the mean of the suites' NCAP scores (each suite counts
    once, whatever its episode count), its standard error sqrt(sum s.e.^2) / n_suites (independent
    suites), and for the learned planner the same mean of its per-suite paired gains over constant velocity."""
    out: dict[str, dict[str, Any]] = {}
    for planner, suites in closed.items():
        ms = [suites.get(s) for s in NCAP_SUITES]
        if any(m is None or m.get("ncap_score") is None for m in ms):
            continue
        entry: dict[str, Any] = {"ncap_score": statistics.fmean(m["ncap_score"] for m in ms), "suites": list(NCAP_SUITES)}
        errs = [m.get("ncap_score_stderr") for m in ms]
        entry["ncap_score_stderr"] = math.sqrt(sum(e * e for e in errs)) / len(ms) if None not in errs else None
        paired = [m.get("paired_vs_constant_velocity") for m in ms]
        if all(paired):
            entry["paired_vs_constant_velocity"] = {
                "metric": "ncap_score", "gain": statistics.fmean(q["gain"] for q in paired),
                "stderr": math.sqrt(sum(q["stderr"] ** 2 for q in paired)) / len(paired), "episodes": sum(q["episodes"] for q in paired),
            }  # fmt: skip
        out[planner] = entry
    return out


def verdict(metrics: dict[str, Any]) -> dict[str, Any]:
    """Plain comparisons: does the world model beat copying, does the planner beat constant velocity?

    Where a paired gain with its standard error is known (world model vs copy-last, closed-loop suites,
    the NCAP average), True means better by more than 2 standard errors: a difference within noise is
    not a win. The open-loop minADE (no paired error here) is the plain comparison."""
    out: dict[str, Any] = {}
    wm = metrics.get("world_model")
    if wm and "gain_vs_copy_last_t1" in wm:
        out["world_model_beats_copy_last_t1"] = _resolved_win(wm["gain_vs_copy_last_t1"], wm.get("gain_vs_copy_last_t1_stderr"))
    ol = metrics.get("open_loop") or {}
    if "vam" in ol and "constant_velocity" in ol:
        out["vam_beats_constant_velocity_open_loop_min_ade"] = ol["vam"]["min_ade"] < ol["constant_velocity"]["min_ade"]
    cl = metrics.get("closed_loop") or {}
    for suite, m in (cl.get("vam") or {}).items():
        cv = (cl.get("constant_velocity") or {}).get(suite)
        if cv:
            key = "ncap_score" if m.get("ncap_score") is not None else "score"
            paired = m.get("paired_vs_constant_velocity")
            gain, err = (paired["gain"], paired["stderr"]) if paired else (m[key] - cv[key], None)
            out[f"vam_beats_constant_velocity_closed_loop_{suite}"] = _resolved_win(gain, err)
        if m.get("paired_vs_ego_mlp"):
            out[f"vam_beats_ego_mlp_closed_loop_{suite}"] = _resolved_win(m["paired_vs_ego_mlp"]["gain"], m["paired_vs_ego_mlp"]["stderr"])
    avg = metrics.get("ncap_average") or {}
    if "vam" in avg and "constant_velocity" in avg:
        paired = avg["vam"].get("paired_vs_constant_velocity")
        gain, err = (paired["gain"], paired["stderr"]) if paired else (avg["vam"]["ncap_score"] - avg["constant_velocity"]["ncap_score"], None)
        out["vam_beats_constant_velocity_ncap_average"] = _resolved_win(gain, err)
    return out


def _resolved_win(gain: float, stderr: float | None) -> bool:
    """gain > 0, and by more than 2 standard errors when its standard error is known."""
    return bool(gain > 0 and (stderr is None or gain > 2 * stderr))


def _verdict_lines(metrics: dict[str, Any]) -> list[str]:
    lines = []
    wm, ol, cl = metrics.get("world_model") or {}, metrics.get("open_loop") or {}, metrics.get("closed_loop") or {}
    if "gain_vs_copy_last_t1" in wm:
        gain, err = wm["gain_vs_copy_last_t1"], wm.get("gain_vs_copy_last_t1_stderr")
        word = "beats" if gain > 0 else "does NOT beat"
        lines.append(f"- The world model {word} copying the last frame at t+1: {wm['psnr_t1']:.2f} vs {wm['psnr_copy_last_t1']:.2f} dB "
                     f"(paired gain {gain:+.2f}" + (f" +- {err:.2f}" if err is not None else "") + f" dB{_noise_note(gain, err)}).")
    for key, what in (("copy_last_raw", "copying the raw last frame"), ("warp", "the ground-plane warp of the last frame"),
                      ("uncond", "the same model told nothing about the ego's motion")):
        parts = []
        for i in (1, 2):
            gain, err = wm.get(f"gain_vs_{key}_t{i}"), wm.get(f"gain_vs_{key}_t{i}_stderr")
            if gain is not None:
                parts.append(f"t+{i} {gain:+.2f}" + (f" +- {err:.2f}" if err is not None else "") + f" dB{_noise_note(gain, err)}")
        if parts:
            lines.append(f"- World model vs {what}: paired PSNR gain {'; '.join(parts)}.")
    if "vam" in ol and "constant_velocity" in ol:
        a, b = ol["vam"]["min_ade"], ol["constant_velocity"]["min_ade"]
        lines.append(f"- Open loop, minADE: planner {a:.2f} m vs constant velocity {b:.2f} m ({'better' if a < b else 'NOT better'}).")
    for suite, m in (cl.get("vam") or {}).items():
        cv = (cl.get("constant_velocity") or {}).get(suite)
        if not cv:
            continue
        key, name = ("ncap_score", "NCAP score") if m.get("ncap_score") is not None else ("score", "score")
        word = "beats" if m[key] > cv[key] else "does NOT beat"
        paired = m.get("paired_vs_constant_velocity")
        pair_text = (f"; paired gain {paired['gain']:+.2f} +- {paired['stderr']:.2f} over {paired['episodes']} episodes"
                     f"{_noise_note(paired['gain'], paired['stderr'])}") if paired else ""
        lines.append(f"- Closed loop, {suite}: the planner {word} constant velocity ({name} {m[key]:.2f} vs {cv[key]:.2f}; "
                     f"collision rate {m['collision_rate']:.2f} vs {cv['collision_rate']:.2f}{pair_text}).")
        ego = m.get("paired_vs_ego_mlp")
        if ego:
            lines.append(f"- Closed loop, {suite}: the planner vs the ego-status MLP (the same ego status and route, no camera): "
                         f"{name} {m[key]:.2f} vs {cl['ego_mlp'][suite][key]:.2f}, paired {ego['gain']:+.2f} +- {ego['stderr']:.2f}"
                         f"{_noise_note(ego['gain'], ego['stderr'])}.")
    avg = metrics.get("ncap_average") or {}
    if "vam" in avg:
        parts = [f"{p} {a['ncap_score']:.2f}" + (f" +- {a['ncap_score_stderr']:.2f}" if a.get("ncap_score_stderr") is not None else "") for p, a in avg.items()]
        paired = avg["vam"].get("paired_vs_constant_velocity")
        pair_text = (f"; the planner's paired gain over constant velocity {paired['gain']:+.2f} +- {paired['stderr']:.2f}"
                     f"{_noise_note(paired['gain'], paired['stderr'])}") if paired else ""
        lines.append(f"- NCAP score averaged over {', '.join(NCAP_SUITES)}: {'; '.join(parts)}{pair_text}.")
    return lines


def _noise_note(gain: float, stderr: float | None) -> str:
    """', within noise' when a paired gain is less than two standard errors from zero."""
    return ", within noise: less than 2 standard errors" if stderr is not None and abs(gain) < 2 * stderr else ""


@dataclass(frozen=True)
class EpisodeStill:
    """One closed-loop episode video of the report and its still strip (PNG), files under the demo dir."""

    planner: str
    suite: str
    video: Path
    strip: Path


@dataclass(frozen=True)
class ReportMedia:
    """The report's pictures and pages, files under the demo directory (None / empty: not made)."""

    summary: Path | None = None  # closed-loop scores with standard errors, every planner and suite
    episodes: tuple[EpisodeStill, ...] = ()
    rollout_grid: Path | None = None  # the world-model evaluation's rollouts as one image grid
    counterfactual: Path | None = None  # the world-model evaluation's counterfactual strip (one context, several manoeuvres)
    dagger: Path | None = None  # the planner's validation score per DAgger round
    rollout_videos: tuple[Path, ...] = ()
    training_curves: Path | None = None
    planner_fans: Path | None = None
    notebooks: tuple[Path, ...] = ()  # DIR/notebooks/*.html


SUMMARY_ALT = "Summary: closed-loop scores of every planner on every suite"
SUMMARY_ID = "summary-figure"
METRIC_DEFINITIONS = """\
- `score` (0-1), nuPlan's closed-loop score of one run: the product of four multipliers times
  (5 `ego_progress` + 5 `time_to_collision_within_bound` + 4 `speed_limit_compliance` + 2 `comfort`) / 16;
  0 for a failed planner run. A suite's score is the mean over its runs.
- Multipliers: `no_at_fault_collisions` (0 after an at-fault collision with a vehicle, pedestrian or
  bicycle; 0.5 after one with a static object, 0 after two), `drivable_area_compliance` (0 once a corner
  of the ego is more than 0.3 m outside the drivable area), `driving_direction_compliance` (1, 0.5 or 0 for
  a worst 1-s wrong-way progress under 2 m, under 6 m, or more), `making_progress` (0 below 20% of the
  expert's progress along the route).
- Weighted: `ego_progress` (progress along the expert's route over the expert's, at most 1),
  `time_to_collision_within_bound` (0 once the time to collision drops to 0.95 s),
  `speed_limit_compliance` (1 - overspeed integrated over the run / (2.23 m/s x duration)), `comfort` (0 once
  acceleration, jerk or yaw rate leaves nuPlan's bounds).
- `failure_rate`: the share of runs in which the planner raised, timed out or returned an invalid plan.
- `ncap_score` (0-5), NeuroNCAP's safety score of an NCAP run: 5 without a collision, else
  4 x max(0, 1 - impact speed / reference speed); a suite's is the mean per scenario, then per scenario type.
  It does not apply to the other suites (n/a).
- `collision_rate`: the share of runs with any contact between the ego and another agent.

The code: `sim_eval/metrics/` (`scenario_score.py`, one file per sub-metric, `ncap.py`, `aggregate.py`)."""


def _link(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def build_markdown(metrics: dict[str, Any], profile: dict[str, Any], commands: list[str], media: ReportMedia, root: Path) -> str:
    """The report text: the pictures first, then the tables; files are linked relative to `root`."""
    parts = [
        "# Foresight demo report",
        "",
        "Synthetic driving data -> image tokenizer -> GPT world model -> flow-matching planner -> closed-loop "
        f"simulation, all on this machine with no downloads. Profile `{profile.get('name')}`; every number below was "
        "measured by the stages of this run (DIR/metrics.json holds them all).",
        "",
    ]
    cl = metrics.get("closed_loop")
    if media.summary is not None:
        episodes = {s: m["num_episodes"] for suites in (cl or {}).values() for s, m in suites.items()}
        parts += [f"![{SUMMARY_ALT}]({_link(media.summary, root)})", "",
                  f"Closed loop, every planner on every suite (episodes per planner: {', '.join(f'{s} {n}' for s, n in episodes.items())}): mean and +-1 standard "
                  "error of the per-episode mean; n/a where a score does not apply (the NCAP score outside the NCAP suites) or "
                  "the run is missing. Definitions: Metric definitions below.", ""]
    else:
        parts += ["No closed-loop results: the summary figure needs the closed-loop stages.", ""]
    parts += ["## Verdict", "", *(_verdict_lines(metrics) or ["No comparison available: the evaluation stages did not run."]), ""]
    parts += ["## Closed-loop episodes", ""]
    if media.episodes:
        parts += ["A still strip of each recorded episode (the first frame, evenly spaced ones, the last); below it the video.", ""]
        for e in media.episodes:
            video = _link(e.video, root)
            parts += [f"**{e.planner} on {e.suite}** (`{e.video.stem}`)", "", f"![{e.planner} on {e.suite}: still strip]({_link(e.strip, root)})", "",
                      f"[{video}]({video})", ""]
    else:
        parts += ["No closed-loop episode video was recorded.", ""]
    parts += ["## World-model rollouts", ""]
    if media.rollout_grid is not None:
        parts += [f"![World-model rollouts on held-out windows]({_link(media.rollout_grid, root)})", "",
                  "Each cell: the true frame (left) beside the world model's (right); green bar: context frames, through the "
                  "tokenizer; red bar: frames the world model predicted greedily from the context.", ""]
        parts += [f"- [{_link(v, root)}]({_link(v, root)})" for v in media.rollout_videos] + [""]
    else:
        parts += ["No world-model rollout video was recorded.", ""]
    parts += ["## Figures", ""]
    for title, path in (("Training curves", media.training_curves),
                        ("Planner: flow-sample fans vs the logged future (bird's-eye view, held-out windows, last training step)", media.planner_fans)):
        if path is not None:
            parts += [f"**{title}**", "", f"![{title}]({_link(path, root)})", ""]
    parts += ["## Notebooks", ""]
    if media.notebooks:
        parts += ["Each notebook of `notebooks/`, executed on this run's outputs (code, text and figures in one page):", ""]
        parts += [f"- [{p.stem}]({_link(p, root)})" for p in media.notebooks] + [""]
    else:
        parts += ["The notebooks were not exported (`notebooks=false`, or the export stage has not run).", ""]
    parts += ["## Stage times", ""]
    stage_s = metrics.get("stage_seconds", {})
    parts.append(md_table(["stage", "seconds"], [[k, v] for k, v in stage_s.items()] + [["**total**", sum(stage_s.values())]]))
    parts += ["", "## World model vs copy-last-frame and the ground-plane warp (held-out episodes)", ""]
    wm = metrics.get("world_model")
    if wm:
        parts.append(md_table(["metric", "value"], [[k, wm[k]] for k in WORLD_MODEL_KEYS if k in wm]))
        parts += [
            "",
            "`psnr_t*` [dB]: greedy predicted frame vs the true frame; `psnr_copy_last_t*`: the last observed frame through "
            "the same tokenizer (encode -> decode), the fair baseline; `psnr_copy_last_raw_t*`: the raw last frame; "
            "`gain_vs_copy_last_t*`: the paired per-window difference (mean, standard error, share of windows won); "
            "`tokenizer_psnr`: the tokenizer's reconstruction of the true frames (the ceiling); `psnr_warp_t*`: the raw last "
            "frame warped on the ground plane by the logged ego motion (`world_model/warp.py`), over `num_windows_warp` windows; "
            "`psnr_uncond_t*`: the same model rolled out without the ego's motion (an ego-motion-conditioned model, "
            "`ego_motion_input`, is given the logged motions in `psnr_t*`); `gain_vs_*`: paired per-window PSNR differences.",
        ]
        if media.counterfactual is not None:
            parts += ["", "**Counterfactual rollouts**: one held-out context, four ego manoeuvres (keep lane, turn left, turn right, brake); "
                      "what the world model imagines under each.", "",
                      f"![Counterfactual rollouts of the world model]({_link(media.counterfactual, root)})"]
        tok = metrics.get("tokenizer")
        if tok:
            parts += ["", f"Tokenizer ({tok.get('num_params')} parameters, {tok.get('steps')} steps): reconstruction "
                      f"PSNR {_fmt(tok.get('psnr_db'), 2)} dB, SSIM {_fmt(tok.get('ssim'))}, code usage {_fmt(tok.get('code_usage'))}."]
    else:
        parts.append("The world-model evaluation did not run.")
    parts += ["", "## Open loop (held-out episodes)", ""]
    ol = metrics.get("open_loop")
    if ol:
        proto = metrics.get("open_loop_protocol") or {}
        parts.append(md_table(["planner", *OPEN_LOOP_KEYS], [[p, *[v.get(k) for k in OPEN_LOOP_KEYS]] for p, v in ol.items()]))
        parts += ["", f"Metres; {proto.get('n_windows')} windows; minADE/minFDE over k={proto.get('samples')} flow samples (one plan for "
                  f"deterministic planners); L2 and collisions of the executed plan ({proto.get('aggregate')}); `log` is the logged future."]
    else:
        parts.append("The open-loop evaluation did not run.")
    parts += ["", "## Closed loop", ""]
    if cl:
        rows = [[p, s, m["score"], m.get("score_stderr"), m["ncap_score"], m.get("ncap_score_stderr"), m["collision_rate"], m["num_episodes"],
                 m.get("plan_latency_ms_mean")] for p, suites in cl.items() for s, m in suites.items()]
        parts.append(md_table(["planner", "suite", "score (0-1)", "+- s.e.", "NCAP score (0-5)", "+- s.e.", "collision rate", "episodes",
                               "plan latency ms"], rows))
        sub = [[p, s, *[m["submetrics"].get(k) for k in SUBMETRIC_COLUMNS]] for p, suites in cl.items() for s, m in suites.items()]
        parts += ["", "Sub-metrics (means over episodes; Metric definitions below):", "", md_table(["planner", "suite", *SUBMETRIC_COLUMNS], sub)]
    else:
        parts.append("The closed-loop evaluation did not run.")
    if metrics.get("dagger_rounds"):
        parts += ["", "## DAgger rounds", "", "The planner rolled out on training seeds, every visited frame labelled with the privileged "
                  "expert's plan, then fine-tuned (`foresight/dagger.py`); its closed-loop score on training-seed `nominal` episodes per round "
                  "(round 0: as trained). The evaluations above use the last round's planner.", ""]
        if media.dagger is not None:
            parts += [f"![DAgger: validation score per round]({_link(media.dagger, root)})", ""]
        parts.append(md_table(list(DAGGER_KEYS), [[r.get(k) for k in DAGGER_KEYS] for r in metrics["dagger_rounds"]]))
    parts += ["", "## Ablation: what the video is worth", ""]
    ab = metrics.get("ablation")
    if ab:
        paired = metrics.get("ablation_paired_vs_observed") or {}
        rows = []
        for v, suites in ab.items():
            for s, m in suites.items():
                gain = paired.get(v, {}).get(s) or {}
                rows.append([v, s, m.get("score"), m.get("score_stderr"), m.get("ncap_score"), m.get("ncap_score_stderr"),
                             m.get("collision_rate"), m.get("num_episodes"), gain.get("gain"), gain.get("stderr")])
        parts.append(md_table(["variant", "suite", "score", "+- s.e.", "NCAP score", "+- s.e.", "collision rate", "episodes",
                               "paired gain vs observed", "+- s.e."], rows))
        parts += ["", "`observed`: the planner as trained; `imagine`: the same weights attending to frames the world model "
                  "generates (a conditioned world model told the previous plan's motion); `no_video`: the ego-status-only MLP; baselines for reference. The paired gain is the mean per-episode "
                  "difference from the observed row on the same episodes (NCAP score on NCAP suites, else score)."]
    else:
        parts.append("The ablation did not run.")
    parts += ["", "## Metric definitions", "", METRIC_DEFINITIONS]
    parts += ["", "## Commands", "", "Each stage is one command; any can be rerun by hand:", "", "```"]
    parts += commands
    parts += ["```", "", "## Profile", "", "```json", json.dumps(profile, indent=1), "```"]
    return "\n".join(parts) + "\n"


def markdown_to_html(text: str, root: Path) -> str:
    """A self-contained page: Python-Markdown renders the text; images become data URIs and links
    to mp4 files become embedded players (files over `max_embed_bytes` stay links)."""
    body = markdown.markdown(text, extensions=["tables", "fenced_code"])
    max_embed_bytes = 8_000_000

    def image(match: re.Match) -> str:
        path = root / match.group(2)
        if not path.is_file():
            return match.group(0)
        return f'{match.group(1)}src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'

    def video(match: re.Match) -> str:
        path = root / match.group(1)
        if not path.is_file() or path.stat().st_size > max_embed_bytes:
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f'{match.group(1)}<br><video controls loop muted src="data:video/mp4;base64,{data}"></video>'

    body = re.sub(r'(<img[^>]*?)src="([^"]+\.png)"', image, body)
    body = re.sub(r'<a href="([^"]+\.mp4)">[^<]*</a>', video, body)
    body = body.replace(f'<img alt="{SUMMARY_ALT}"', f'<img id="{SUMMARY_ID}" alt="{SUMMARY_ALT}"', 1)  # what a reader sees first
    style = ("body{font-family:sans-serif;max-width:1150px;margin:2em auto;padding:0 1em}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}img,video{max-width:100%}"
             "pre{background:#f4f4f4;padding:.6em;overflow:auto;font-size:12px}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Foresight demo report</title><style>{style}</style></head><body>{body}</body></html>"


def episode_stills(paths: DemoPaths, profile: dict[str, Any], out_dir: Path) -> list[EpisodeStill]:
    """A still strip (out_dir/<planner>_<suite>_<video>.png) of every closed-loop episode video of the demo."""
    stills = []
    for planner in profile["closed_loop"]["planners"]:
        for suite in profile["closed_loop"]["suites"]:
            for video in sorted(paths.closed_loop(planner, suite).glob("videos/*.mp4")):
                stills.append(EpisodeStill(planner, suite, video, video_strip(video, out_dir / f"{planner}_{suite}_{video.stem}.png")))
    return stills


def write_demo_report(paths: DemoPaths, profile: dict[str, Any], metrics: dict[str, Any], commands: list[str]) -> tuple[Path, Path]:
    """DIR/metrics.json, DIR/report.md and DIR/report.html (with DIR/figures/*.png)."""
    root = paths.root
    fig_dir = root / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    rollout_videos = sorted(paths.world_model_eval.glob("videos/*.mp4"))[:4]
    runs = {"tokenizer": paths.tokenizer, "world model": paths.world_model, "planner": paths.planner}
    fans = sorted((paths.planner / "plots").glob("step_*.png"))
    media = ReportMedia(
        summary=plot_closed_loop_summary(metrics.get("closed_loop") or {}, fig_dir / "summary.png"),
        episodes=tuple(episode_stills(paths, profile, fig_dir / "strips")),
        rollout_grid=world_model_rollout_grid(rollout_videos, fig_dir / "world_model_rollouts.png"),
        rollout_videos=tuple(rollout_videos),
        dagger=plot_dagger_rounds(metrics.get("dagger_rounds") or [], fig_dir / "dagger_rounds.png"),
        counterfactual=counterfactual if (counterfactual := paths.world_model_eval / COUNTERFACTUAL_PNG).is_file() else None,
        training_curves=plot_training_curves({k: read_run_metrics(p) for k, p in runs.items()}, fig_dir / "training_curves.png"),
        planner_fans=fans[-1] if fans else None,
        notebooks=tuple(sorted(paths.notebooks.glob("*.html"))),
    )
    atomic = root / "metrics.json.tmp"
    atomic.write_text(json.dumps(metrics, indent=1, allow_nan=False))
    atomic.replace(root / "metrics.json")
    text = build_markdown(metrics, profile, commands, media, root)
    md_path, html_path = root / "report.md", root / "report.html"
    md_path.write_text(text)
    html_path.write_text(markdown_to_html(text, root))
    return md_path, html_path
