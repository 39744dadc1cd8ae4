"""`foresight demo out=DIR`: the whole idea on one machine, stage by stage, then a report.

synthetic data (train + held-out) -> tokenizer -> tokens -> world model -> world-model eval ->
planner -> open-loop eval -> closed-loop eval (learned planner and baselines) -> ablation -> the
notebooks executed on these outputs and exported as HTML -> report.

Every stage is an ordinary command, `foresight ...` (the notebook export: its `jupyter nbconvert`
equivalent), printed as it runs so that any stage can be rerun by hand, writing into its own folder
of DIR. A finished stage leaves DIR/stages/<name>.json (its
command and its duration); rerunning the demo skips finished stages and resumes an interrupted one
(the commands themselves resume: clip stores, token stores and training runs pick up where they
stopped). `profile=` picks the sizes (configs/profile/<name>.yaml).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from rich.console import Console

log = logging.getLogger(__name__)
console = Console()


# Sections of the composed config a command never reads (other stages' profiles, which every
# `experiment=` composes): left out of its fingerprint, so tuning the planner does not retrain the
# tokenizer and the world model. world_model/train.py leaves the same sections out of its record.
OTHER_STAGES_SECTIONS = {
    ("train", "tokenizer"): ("world_model", "planner"),
    ("train", "world_model"): ("tokenizer", "planner"),
}


@dataclass(frozen=True)
class Stage:
    """One step of the demo: `foresight <words> <overrides>`, writing into `out`."""

    name: str
    words: tuple[str, ...]
    overrides: tuple[str, ...]
    expected_s: float = 60.0  # the profile's estimate, for the ETA line
    out: Path | None = None  # what the stage writes (cleared when a finished stage must run again)

    def command_line(self) -> str:
        return "foresight " + " ".join([*self.words, *map(shlex.quote, self.overrides)])

    def run(self) -> Any:
        from foresight.cli import run_subcommand

        return run_subcommand(self.words[0], self.words[1] if len(self.words) > 1 else None, list(self.overrides))

    def fingerprint(self) -> str:
        """SHA-256 of the stage's composed config: it changes with the command line AND with any
        config file the command reads (a profile edit), unlike the command line alone; sections the
        command never reads (OTHER_STAGES_SECTIONS) are left out."""
        from omegaconf import OmegaConf

        from configs import compose
        from foresight.commands import COMMANDS

        entry = COMMANDS[self.words[0]]
        config = entry.config if not isinstance(entry, dict) else entry[self.words[1]].config
        composed = OmegaConf.to_container(compose(config, list(self.overrides)), resolve=True)
        for section in OTHER_STAGES_SECTIONS.get(tuple(self.words[:2]), ()):
            composed.pop(section, None)
        return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(composed)).encode()).hexdigest()


@dataclass(frozen=True)
class NotebookExportStage(Stage):
    """The last stage: every notebook of notebooks/ executed on the demo's outputs, written with its
    figures as `out`/<name>.html (foresight/notebooks.py). Its fingerprint is the notebooks' text;
    it runs again whenever a stage before it ran (run_stages), so the pages show this run."""

    demo: Path = Path(".")

    def command_line(self) -> str:  # what the stage does, by hand
        return (f"FORESIGHT_DEMO_DIR={shlex.quote(str(self.demo))} jupyter nbconvert --to html --execute notebooks/*.ipynb "
                f"--output-dir {shlex.quote(str(self.out))}")

    def fingerprint(self) -> str:
        from foresight.notebooks import NOTEBOOKS, NOTEBOOKS_DIR

        digest = hashlib.sha256()
        for name in NOTEBOOKS:
            digest.update(name.encode() + b"\0" + (NOTEBOOKS_DIR / name).read_bytes())
        return digest.hexdigest()

    def run(self) -> Any:
        from foresight.notebooks import export_notebooks

        exported = export_notebooks(self.demo, self.out)
        for e in exported:
            console.print(f"{e.html}: {e.images} figures, {e.seconds:.0f} s")
        return exported


def notebook_export_stage(paths: DemoPaths, expected_s: float = 60.0) -> NotebookExportStage:
    return NotebookExportStage("export_notebooks", ("notebooks",), (), expected_s, paths.notebooks, demo=paths.root)


def _marker(out: Path, stage: Stage) -> Path:
    return out / "stages" / f"{stage.name}.json"


def _run_stage(stage: Stage) -> Any:
    return stage.run()


def run_stages(out: Path, stages: list[Stage], runner: Callable[[Stage], Any] = _run_stage,
               fingerprint: Callable[[Stage], str] | None = None) -> dict[str, float]:
    """Run the stages not yet done; returns seconds per stage (earlier runs' for the skipped ones).

    A stage is done when its marker holds the same config fingerprint. A finished stage whose config
    changed runs again from scratch (its old output is removed), and so does every stage after the
    first one that runs, since they read its output. An interrupted stage (no marker) resumes."""
    (out / "stages").mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    remaining = sum(s.expected_s for s in stages)
    started = time.perf_counter()
    upstream_ran = False
    for i, stage in enumerate(stages, 1):
        marker = _marker(out, stage)
        done = json.loads(marker.read_text()) if marker.is_file() else None
        key = fingerprint(stage) if fingerprint else stage.fingerprint()
        if done is not None and done.get("fingerprint") == key and not upstream_ran:
            seconds[stage.name] = float(done["seconds"])
            remaining -= stage.expected_s
            console.print(f"[dim][{i}/{len(stages)}] {stage.name}: done earlier ({done['seconds']:.0f} s), skipped[/dim]")
            continue
        if done is not None:  # finished with another config or on older inputs: start it over
            marker.unlink()
            if stage.out is not None and stage.out.exists():
                console.print(f"[yellow]{stage.name}: its config or inputs changed; removing {stage.out} and running it again[/yellow]")
                shutil.rmtree(stage.out)
        upstream_ran = True
        elapsed = time.perf_counter() - started
        console.rule(
            f"[{i}/{len(stages)}] {stage.name}: about {_minutes(stage.expected_s)}; demo: {_minutes(elapsed)} so far, ETA {_minutes(remaining)}"
        )
        console.print(f"$ {stage.command_line()}", style="bold", markup=False)
        t0 = time.perf_counter()
        runner(stage)
        seconds[stage.name] = time.perf_counter() - t0
        remaining -= stage.expected_s
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"command": stage.command_line(), "fingerprint": key, "seconds": seconds[stage.name]}))
        tmp.replace(marker)
    return seconds


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{max(seconds, 0):.0f} s"


@dataclass(frozen=True)
class DemoPaths:
    """Where each stage writes, under the demo's output directory; with `dagger_rounds` > 0 the
    planner every evaluation uses is the last DAgger round's."""

    root: Path
    dagger_rounds: int = 0

    @classmethod
    def of(cls, root: Path, profile: Mapping[str, Any]) -> "DemoPaths":
        return cls(Path(root), int((profile.get("planner") or {}).get("dagger_rounds", 0)))

    @property
    def train_clips(self) -> Path:
        return self.root / "data" / "train"

    @property
    def heldout_clips(self) -> Path:
        return self.root / "data" / "heldout"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def train_tokens(self) -> Path:
        return self.root / "tokens" / "train"

    @property
    def world_model(self) -> Path:
        return self.root / "world_model"

    @property
    def world_model_eval(self) -> Path:
        return self.root / "eval" / "world_model"

    @property
    def planner(self) -> Path:
        return self.root / "planner"

    @property
    def vam(self) -> Path:
        """The planner the evaluations use: the trained one, or the last DAgger round's."""
        if self.dagger_rounds:
            return self.root / "planner" / "dagger" / f"round_{self.dagger_rounds:02d}" / "train" / "vam"
        return self.root / "planner" / "vam"

    @property
    def dagger_rounds_json(self) -> Path:
        return self.root / "planner" / "dagger" / "rounds.json"

    @property
    def open_loop(self) -> Path:
        return self.root / "eval" / "open_loop"

    @property
    def ablation(self) -> Path:
        return self.root / "eval" / "ablation"

    def closed_loop(self, planner: str, suite: str) -> Path:
        return self.root / "eval" / "closed_loop" / planner / suite

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"


def build_stages(profile: Mapping[str, Any], paths: DemoPaths, precision: str) -> list[Stage]:
    """The demo's stage list for a profile (configs/profile/<name>.yaml); `precision` is every
    training stage's trainer.precision ("auto" leaves the trainer group's own); the learned planner's
    closed-loop stages run it at the matching `vam.precision` (`inference_precision`) unless the profile's
    `vam` section names one."""
    from foresight.training.precision import inference_precision, resolve_precision

    d, p = profile["data"], paths
    experiment = f"experiment={profile['experiment']}"
    trained = [] if precision == "auto" else [f"trainer.precision={precision}"]
    expected = profile.get("expected_s") or {}
    extra = profile.get("args") or {}
    workers = int(profile.get("workers", 2))
    frames = [f"height={d['height']}", f"width={d['width']}", f"fps={d['fps']}", f"workers={workers}"]

    def stage(name: str, words: str, *overrides: str, expected_key: str | None = None) -> Stage:
        args = (*overrides, *[str(a) for a in extra.get(name, [])])
        outs = [a.split("=", 1)[1] for a in overrides if a.startswith("out=")]
        return Stage(name, tuple(words.split()), args, float(expected.get(expected_key or name, 60.0)), Path(outs[0]) if outs else None)

    stages = [
        stage("synth_train", "data synth", f"out={p.train_clips}", f"episodes={d['train_episodes']}", f"seed={d['train_seed']}", *frames,
              *[f"perturb.{k}={v}" for k, v in (d.get("perturb") or {}).items()]),  # recoveries in the training data only
        stage("synth_heldout", "data synth", f"out={p.heldout_clips}", f"episodes={d['heldout_episodes']}", f"seed={d['heldout_seed']}", *frames),
        stage("train_tokenizer", "train tokenizer", experiment, *trained, f"clips={p.train_clips}", f"out={p.tokenizer}",
              f"tokenizer.max_steps={profile['tokenizer']['max_steps']}"),
        stage("tokenize_train", "data tokenize", f"clips={p.train_clips}", f"tokenizer={p.tokenizer}", f"out={p.train_tokens}", "warp_prev=true"),
        stage("train_world_model", "train world_model", experiment, *trained, f"tokens={p.train_tokens}", f"out={p.world_model}",
              f"world_model.max_steps={profile['world_model']['max_steps']}", f"world_model.fps={d['fps']}"),
        stage("eval_world_model", "eval world_model", f"checkpoint={p.world_model}", f"tokenizer={p.tokenizer}", f"clips={p.heldout_clips}",
              f"out={p.world_model_eval}", f"max_windows={profile['world_model_eval']['max_windows']}"),
        stage("train_planner", "train planner", experiment, *trained, f"world_model={p.world_model}", f"tokenizer={p.tokenizer}", f"clips={p.train_clips}",
              f"tokens={p.train_tokens}", f"out={p.planner}", f"planner.train.max_steps={profile['planner']['max_steps']}",
              *([f"dagger.rounds={p.dagger_rounds}"] if p.dagger_rounds else [])),
        stage("eval_open_loop", "eval open_loop", f"checkpoint={p.vam}", f"clips={p.heldout_clips}", f"out={p.open_loop}",
              f"samples={profile['open_loop']['samples']}", f"max_windows={profile['open_loop'].get('max_windows') or 'null'}"),
    ]
    cl = profile["closed_loop"]
    vam = profile.get("vam") or {}
    vam_options = [f"vam.{k}={v}" for k, v in vam.items()]  # e.g. the GPU profile's device
    if "precision" not in vam:  # the planner runs as it trained where the device runs that natively
        vam_options.append(f"vam.precision={inference_precision(resolve_precision(precision, 'auto'), str(vam.get('device') or 'cpu'))}")
    for planner in cl["planners"]:
        for suite in cl["suites"]:
            overrides = [f"planner={planner}", f"suite={suite}", f"episodes={suite_episodes(cl, suite)}", "seed=0", f"out={p.closed_loop(planner, suite)}",
                         "overwrite=true", f"workers={workers}", f"videos={cl.get('videos', 1)}", f"runner.image_height={d['height']}", f"runner.image_width={d['width']}"]
            if planner == "vam":
                overrides += [f"checkpoint={p.vam}", *vam_options]
            elif planner == "ego_mlp":  # exported beside the planner: its ego status and route, no camera
                overrides += [f"checkpoint={p.vam}"]
            stages.append(stage(f"closed_loop_{planner}_{suite}", "eval closed_loop", *overrides, expected_key="closed_loop"))
    ab = profile.get("ablation")
    if ab and ab.get("suites"):
        stages.append(stage("ablation", "eval ablation", f"checkpoint={p.vam}", f"suites=[{','.join(ab['suites'])}]", f"episodes={ab['episodes']}",
                            "seed=0", f"out={p.ablation}", "overwrite=true", f"workers={workers}", f"runner.image_height={d['height']}", f"runner.image_width={d['width']}",
                            *vam_options))
    return stages


def suite_episodes(closed_loop: dict[str, Any], suite: str) -> int:
    """Closed-loop episodes for `suite`: closed_loop.suite_episodes[suite] when given, else closed_loop.episodes."""
    return int((closed_loop.get("suite_episodes") or {}).get(suite, closed_loop["episodes"]))


def run(cfg) -> dict[str, Any]:
    """`foresight demo`: run the stages, then write the report; returns the report's metrics."""
    from omegaconf import OmegaConf

    from foresight.report import collect_metrics, write_demo_report

    profile = OmegaConf.to_container(cfg.profile, resolve=True)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = DemoPaths.of(out, profile)
    stages = build_stages(profile, paths, str(cfg.precision))
    if cfg.get("notebooks", True):
        from foresight.notebooks import check_export_possible

        if not cfg.get("report_only"):
            check_export_possible()  # before any stage: a missing Jupyter package must not stop the demo at its end
        stages.append(notebook_export_stage(paths, float((profile.get("expected_s") or {}).get("export_notebooks", 60.0))))
    (out / "stages").mkdir(parents=True, exist_ok=True)
    (out / "stages" / "profile.json").write_text(json.dumps(profile, indent=1))
    if cfg.get("report_only"):
        seconds = {s.name: float(json.loads(_marker(out, s).read_text())["seconds"]) for s in stages if _marker(out, s).is_file()}
    else:
        seconds = run_stages(out, stages)
    metrics = collect_metrics(paths, profile, seconds)
    md, html = write_demo_report(paths, profile, metrics, [s.command_line() for s in stages])
    console.rule("demo finished")
    console.print(f"total {_minutes(sum(seconds.values()))}; report: {md} and {html}; numbers: {out / 'metrics.json'}")
    return metrics
