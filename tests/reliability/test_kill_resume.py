"""kill -9 at seeded points of every data and training stage, then the same command again: the
outputs equal those of an uninterrupted run, byte for byte.

The stages are the smoke demo's (foresight/demo.py `build_stages`), each run as its own `foresight`
process, with a few more steps for the training stages so that a kill can land between checkpoints.
A kill is timed from the first sign of work (a shard, a checkpoint) plus a seeded delay, so it falls
inside the work rather than during interpreter start-up.

Every process runs the code as it was when the test started (a copy of the packages and configs):
the two runs of a stage are minutes apart, and in a working tree that is being edited meanwhile the
uninterrupted run and the killed one would otherwise run different code (a changed model or profile)
and differ for that reason alone.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from configs import compose
from foresight.demo import DemoPaths, Stage, build_stages

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGES = ("synth_train", "train_tokenizer", "tokenize_train", "train_world_model", "train_planner")
MORE_STEPS = {
    "train_tokenizer": ["tokenizer.max_steps=10"],
    "train_world_model": ["world_model.max_steps=10"],
    "train_planner": ["planner.train.max_steps=10"],
}
# What may differ between equivalent runs: logs and timings, and the checkpoints a kill cuts short.
VOLATILE_PARTS = {"logs", "checkpoints", "stages", "lightning_logs", "plots"}
VOLATILE_NAMES = {"train_summary.json", "metrics.csv", "hparams.yaml"}
CODE = ("configs", "contract", "data", "foresight", "planner", "sim_eval", "world_model")  # what the stage processes import
RESUMED = re.compile(r"resuming .* from (\S+) \(step (\d+)\)")


def snapshot_code(to: Path) -> Path:
    """A copy of the packages the stages run (and their configs) in `to`, the cwd of every stage process."""
    for name in CODE:
        shutil.copytree(REPO_ROOT / name, to / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return to


def smoke_stages(root: Path) -> list[Stage]:
    profile = OmegaConf.to_container(compose("demo", ["profile=smoke"]).profile, resolve=True)
    by_name = {s.name: s for s in build_stages(profile, DemoPaths(root), "auto")}
    stages = []
    for name in STAGES:
        s = by_name[name]
        quiet = ["trainer.progress_bar=false"] if name.startswith("train") else []
        stages.append(Stage(s.name, s.words, (*s.overrides, *MORE_STEPS.get(name, []), *quiet), s.expected_s, s.out))
    return stages


def command(stage: Stage) -> list[str]:
    return [sys.executable, "-c", "import sys; from foresight.cli import main; sys.exit(main(sys.argv[1:]))", *stage.words, *stage.overrides]


def started_work(out: Path) -> bool:
    """A shard or a checkpoint exists: the stage is past its start-up."""
    return any(p.suffix in (".safetensors", ".ckpt") for p in out.rglob("*")) if out.exists() else False


def run(stage: Stage, code: Path, kill_at: float | None = None) -> tuple[int, float, str]:
    """Run the stage with the code in `code`; with kill_at (seconds), SIGKILL it (and any worker it
    started) that long after its first shard/checkpoint. Returns (exit status, seconds from the first
    shard/checkpoint to the end, its stderr): -9 when killed."""
    proc = subprocess.Popen(command(stage), cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    while proc.poll() is None and not started_work(stage.out):
        time.sleep(0.02)
    t0 = time.monotonic()
    if kill_at is not None:
        time.sleep(kill_at)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = proc.communicate(timeout=600)[1].decode(errors="replace")
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"{stage.command_line()} exited {proc.returncode}\n{stderr[-3000:]}")
    return proc.returncode, time.monotonic() - t0, stderr


def resumed_from(stderr: str) -> str:
    """'<checkpoint> (step N)' when the run resumed a training checkpoint, else ''."""
    found = RESUMED.search(stderr)
    return f"{Path(found.group(1)).name} (step {found.group(2)})" if found else ""


def outputs(root: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not (set(rel.parts) & VOLATILE_PARTS) and rel.name not in VOLATILE_NAMES:
            files[str(rel)] = path.read_bytes()
    return files


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_killed_stages_resume_to_the_bytes_of_an_uninterrupted_run(tmp_path, seed):
    rng = random.Random(seed)
    code = snapshot_code(tmp_path / "code")
    root = tmp_path / "run"  # both runs write under the same path: outputs that record paths agree
    stages = smoke_stages(root)  # composed once: both runs get the same commands
    work_s = {stage.name: run(stage, code)[1] for stage in stages}
    clean_files = outputs(root)
    root.rename(tmp_path / "clean")
    kills, resumes = {}, {}
    for stage in stages:
        kills[stage.name] = run(stage, code, kill_at=rng.uniform(0.05, 0.6) * work_s[stage.name])[0]
        status, _, stderr = run(stage, code)
        assert status == 0  # the same command again resumes
        resumes[stage.name] = resumed_from(stderr)
    assert sum(status == -signal.SIGKILL for status in kills.values()) >= 2, kills  # kills landed (a stage may finish first on a loaded machine)
    killed_files = outputs(root)
    assert sorted(killed_files) == sorted(clean_files)
    differing = [name for name in clean_files if clean_files[name] != killed_files[name]]
    assert not differing, f"differ after kill + resume (exit statuses {kills}, resumed from {resumes}): {differing}"
