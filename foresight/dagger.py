"""DAgger rounds for the planner (`foresight train planner ... dagger.rounds=N`).

Behaviour cloning on the expert's recordings leaves the planner in states the expert never showed
it (its own drift). Each round r = 1..N (Ross et al. 2011, "DAgger"):
  1. roll the current planner out in training scenarios (dagger.suites, seeds from dagger.seed; never
     evaluation seeds), the expert executing each plan with probability beta_r
     (foresight/dagger_rollout.py), the planner at its training precision where the CPU runs that
     natively (`planner_precision`: bf16 after a bf16 training on AVX512-BF16/AMX, else fp32); every camera frame it saw is labelled with the privileged
     expert's plan from the state it was in: OUT/dagger/round_RR/clips (provenance: round, source
     planner and its weights' SHA-256, beta, scenario seed) with expert_labels/;
  2. tokenize them with the run's tokenizer (round_RR/tokens);
  3. fine-tune from the previous round's planner (round 1: OUT/vam) for dagger.steps_per_round steps
     on the original data plus every round's so far (round_RR/train, a `foresight train planner`
     run of its own: checkpoints, resume, export to round_RR/train/vam);
  4. score the new planner closed loop on dagger.validation_episodes `nominal` training-seed
     episodes (round_RR/validation/metrics.json), the trained planner too (round_00).
round_RR/round.json is written when a round is done; OUT/dagger/rounds.json lists every finished
round (round, beta, score, its standard error, collision rate, windows added, planner). A rerun
after a kill skips finished rounds, records the rollouts the store lacks (deterministic: the same
planner, scenario and coin seed drive the same way), resumes tokenizing and fine-tuning from their
own journals and checkpoints, and gives the same planners as an uninterrupted run. Each round.json
records the settings it ran with (round_settings: rollouts, beta, steps, learning rate, the check's
episodes); a rerun asking other dagger.* settings for a finished round is refused, not read back.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from data.store.manifest import atomic_write_text
from foresight.dagger_config import DaggerRoundDir, DaggerSettings
from foresight.dagger_rollout import RolloutSettings, record_round, weights_sha256
from sim_eval.runner import RunnerConfig
from sim_eval.seeds import check_training_seeds

log = logging.getLogger(__name__)

ROUNDS_FILE = "rounds.json"


def rollout_runner(vam_dir: str | Path) -> RunnerConfig:
    """The closed-loop settings of rollouts and validation: the defaults (configs/runner/default.yaml),
    camera frames at the planner's frame period, the camera at the planner's input size."""
    from planner.action_model.checkpoint import load_vam_export

    return RunnerConfig.default(camera_period_s=load_vam_export(vam_dir).frame_period_s)


def planner_precision(c: Any) -> str:
    """The precision (fp32 | bf16) the rollouts and checks run the planner at, on the CPU: as it
    trained (c.trainer) where this CPU runs that natively (`inference_precision`)."""
    from foresight.training.precision import inference_precision

    return inference_precision(c.trainer.resolved_precision, "cpu")


def validate(vam_dir: Path, out: Path, d: DaggerSettings, precision: str = "fp32") -> dict[str, Any]:
    """Closed-loop score of the planner at vam_dir, run at `precision`, on d.validation_episodes
    `nominal` training-seed episodes (metrics.json in `out`; reused when a finished one is there).
    Keys: score, score_stderr (standard error over episodes), collision_rate, episodes."""
    if d.validation_episodes == 0:
        return {"score": None, "score_stderr": None, "collision_rate": None, "episodes": 0}
    check_training_seeds((e.seed for e in d.validation_episode_list()), "DAgger validation")
    metrics_path = out / "metrics.json"
    if not metrics_path.is_file():
        from foresight.planners import planner_source
        from sim_eval.evaluate import evaluate

        evaluate(planner_source("vam", {"checkpoint": str(vam_dir), "precision": precision}), "nominal", d.validation_episodes, d.validation_seed, out,
                 rollout_runner(vam_dir), workers=d.workers)
    metrics = json.loads(metrics_path.read_text())
    scores = [float(e["score"]) for e in metrics["episodes"]]
    n = len(scores)
    mean = sum(scores) / n
    stderr = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1) / n) if n > 1 else None
    return {"score": metrics["score"], "score_stderr": stderr, "collision_rate": metrics["collision_rate"], "episodes": n}


def fine_tune_config(c: Any, round_index: int, init_from: Path) -> dict[str, Any]:
    """The `foresight train planner` config of round `round_index`'s fine-tuning: the run's own, from
    the previous planner, dagger.steps_per_round steps (at dagger.lr when set), on the original data
    plus rounds 1..r, its open-loop check on at most dagger.fine_tune_val_windows windows."""
    d = c.dagger
    raw = copy.deepcopy(c.raw)
    raw["out"] = str(DaggerRoundDir.of(c.out, round_index).train)
    raw["init_from"] = str(init_from)
    raw["planner"]["train"]["max_steps"] = d.steps_per_round
    train = raw["planner"]["train"]
    train["val_max_windows"] = min(d.fine_tune_val_windows, train["val_max_windows"])
    if d.lr is not None:
        raw["planner"]["train"]["lr"] = d.lr
    raw["dagger"] = {**raw["dagger"], "rounds": 0}
    raw["dagger_data"] = [*raw.get("dagger_data", []), *(str(DaggerRoundDir.of(c.out, r).root) for r in range(1, round_index + 1))]
    if isinstance(raw.get("trainer"), dict) and "ckpt_path" in raw["trainer"]:
        raw["trainer"]["ckpt_path"] = None  # a chosen checkpoint is the base run's
    return raw


def _write_rounds(out: Path, records: list[dict[str, Any]]) -> None:
    path = out / "dagger" / ROUNDS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(records, indent=1))


def round_settings(d: DaggerSettings, round_index: int, lr: float) -> dict[str, Any]:
    """What decides round `round_index`'s outcome besides the planner it starts from (recorded in its
    round.json as "settings"): its rollouts [suite, index, seed], beta, fine-tuning steps and peak
    learning rate (lr: the planner's, used when dagger.lr is null), and the closed-loop check's episodes.
    Round 0 (the trained planner's check) has only the last."""
    check = {"validation_episodes": d.validation_episodes, "validation_seed": d.validation_seed}
    if round_index == 0:
        return check
    return {"rollouts": [[e.suite, e.index, e.seed] for e in d.episodes(round_index)], "beta": d.beta_at(round_index),
            "steps_per_round": d.steps_per_round, "lr": d.lr if d.lr is not None else lr, **check}


def _finished_round(record_path: Path, round_index: int, expected: dict[str, Any]) -> dict[str, Any]:
    """The record of a finished round, refused when it was made with other dagger.* settings than the
    run asks for now (its planner, data and score would not be what the config says); records from
    before settings were recorded are read back as they are."""
    record = json.loads(record_path.read_text())
    recorded = record.get("settings")
    if recorded is not None and recorded != expected:
        changed = sorted(k for k in expected.keys() | recorded.keys() if recorded.get(k) != expected.get(k))
        raise ValueError(f"DAgger round {round_index} in {record_path.parent} was run with other settings ({', '.join(changed)}: "
                         f"recorded {[recorded.get(k) for k in changed]}, asked {[expected.get(k) for k in changed]}); "
                         "restore dagger.* or choose another `out`")
    return record


def run_round(c: Any, round_index: int, previous_vam: Path, callbacks: list | None) -> dict[str, Any]:
    """Round `round_index` (see the module docstring); returns its record (also in round.json)."""
    from planner.train import run_train_planner
    from world_model.tokens.tokenize import TokenizeConfig, run_tokenize

    d: DaggerSettings = c.dagger
    rd = DaggerRoundDir.of(c.out, round_index)
    beta = d.beta_at(round_index)
    episodes = d.episodes(round_index)
    precision = planner_precision(c)
    settings = RolloutSettings(str(previous_vam), weights_sha256(previous_vam), round_index, beta, rollout_runner(previous_vam), precision)
    log.info("DAgger round %d: %d rollouts of %s (beta %.3f, %s)", round_index, len(episodes), previous_vam, beta, precision)
    record_round(rd.clips, episodes, settings, d.workers)
    run_tokenize(TokenizeConfig.default(rd.clips, c.tokenizer, rd.tokens, num_workers=0))
    summary = run_train_planner(fine_tune_config(c, round_index, previous_vam), callbacks)
    validation = validate(rd.vam, rd.validation, d, precision)
    record = {
        "round": round_index,
        "beta": beta,
        "episodes": len(episodes),
        "scenario_seeds": sorted({e.seed for e in episodes}),
        "windows_added": summary["dagger_windows"][-1],
        "train_windows": summary["train_windows"],
        "steps": d.steps_per_round,
        "source_planner": str(previous_vam),
        "source_planner_sha256": settings.checkpoint_sha256,
        "planner": str(rd.vam),
        "planner_sha256": weights_sha256(rd.vam),
        "planner_precision": precision,
        **{f"validation_{k}": v for k, v in validation.items()},
        "settings": round_settings(d, round_index, c.planner.train.lr),
    }
    atomic_write_text(rd.record, json.dumps(record, indent=1))
    return record


def _stale_rounds(out: Path, base_sha256: str, overwrite: bool) -> None:
    """OUT/dagger holding rounds that started from another trained planner (the run was replaced) is
    refused, or removed with trainer.overwrite=true: its rounds would otherwise be read back."""
    base = DaggerRoundDir.of(out, 0)
    if not base.record.is_file() or json.loads(base.record.read_text()).get("planner_sha256") == base_sha256:
        return
    if not overwrite:
        raise ValueError(f"{out / 'dagger'} holds DAgger rounds of another trained planner than {out / 'vam'}; remove it, "
                         "or rerun with trainer.overwrite=true to start the rounds afresh")
    log.warning("trainer.overwrite=true: removing the DAgger rounds of the replaced planner in %s", out / "dagger")
    shutil.rmtree(out / "dagger")


def run_dagger_rounds(c: Any, base_vam: Path, callbacks: list | None = None) -> dict[str, Any]:
    """Rounds 1..c.dagger.rounds after the run that exported `base_vam` (c: its TrainPlannerConfig);
    finished rounds are read back, not redone. Returns {"rounds": [...], "vam": the last planner}."""
    out = Path(c.out)
    base = DaggerRoundDir.of(out, 0)
    base_sha256 = weights_sha256(base_vam)
    _stale_rounds(out, base_sha256, c.trainer.overwrite)
    lr = c.planner.train.lr
    if base.record.is_file():
        records = [_finished_round(base.record, 0, round_settings(c.dagger, 0, lr))]
    else:
        precision = planner_precision(c)
        records = [{"round": 0, "beta": None, "episodes": 0, "windows_added": 0, "planner": str(base_vam), "planner_sha256": base_sha256,
                    "planner_precision": precision,
                    **{f"validation_{k}": v for k, v in validate(base_vam, base.validation, c.dagger, precision).items()},
                    "settings": round_settings(c.dagger, 0, lr)}]
        base.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(base.record, json.dumps(records[0], indent=1))
    _write_rounds(out, records)
    vam = base_vam
    for r in range(1, c.dagger.rounds + 1):
        rd = DaggerRoundDir.of(out, r)
        record = _finished_round(rd.record, r, round_settings(c.dagger, r, lr)) if rd.record.is_file() else run_round(c, r, vam, callbacks)
        records.append(record)
        _write_rounds(out, records)
        vam = rd.vam
        log.info("DAgger round %d: validation score %s (%s windows added)", r, record["validation_score"], record["windows_added"])
    return {"rounds": records, "vam": str(vam)}
