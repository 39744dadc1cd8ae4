"""Every `foresight` command is a Hydra app: Hydra's flags (--cfg, --info, -m with the basic sweeper
and a chosen launcher), the composed config recorded in the run dir, --help with the YAML's
comments, one line per log record, and nothing created for commands without an output dir."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys

import yaml

from configs import CONFIG_DIR
from data.bench import road_like_clip
from data.store import ClipStoreWriter
from foresight.cli import main, run_subcommand
from tests.conftest import REPO_ROOT

SMALL_EVAL = ["planner=constant_velocity", "suite=smoke", "episodes=1", "workers=1", "videos=0", "runner.image_height=32", "runner.image_width=64"]
BENCH_SIM = ["height=36", "width=64", "render_frames=5", "sim_steps=20", "highway_env_steps=5"]


def test_cfg_job_prints_the_composed_config_and_runs_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "closed_loop", "--cfg", "job", "planner=constant_velocity", "suite=ncap_side"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["planner"] == "constant_velocity" and cfg["suite"] == "ncap_side" and cfg["out"] == "???"
    assert "hydra" not in cfg and cfg["runner"]["dt_s"] == 0.1  # the defaults list's groups are in it
    assert main(["eval", "closed_loop", "--cfg", "hydra", "out=runs/x"]) == 0
    hydra = yaml.safe_load(capsys.readouterr().out)["hydra"]
    assert hydra["run"]["dir"] == "${out}" and hydra["sweep"]["subdir"] == "${hydra.job.num}"
    assert main(["eval", "closed_loop", "--cfg", "all", "--resolve", "out=runs/x"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["hydra"]["run"]["dir"] == "runs/x"
    assert main(["eval", "closed_loop", "--info", "defaults"]) == 0
    assert "runner/default" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # no outputs/ dir, no run dir


def test_hydra_flags_that_do_not_fit_are_configuration_errors(capsys):
    for args in (["--resolve"], ["--cfg", "job", "-m"], ["--config-name", "other"], ["--cfg", "nope"], ["--not-a-flag"], ["planner=constant_velocity,expert"]):
        assert main(["eval", "closed_loop", *args, "out=x"]) == 2, args
    assert "--resolve only goes with --cfg" in capsys.readouterr().err


def test_a_run_records_its_composed_config_in_its_out_dir(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["eval", "closed_loop", *SMALL_EVAL, f"out={out}"]) == 0
    assert (out / "metrics.json").is_file()
    record = out / ".hydra"
    config = yaml.safe_load((record / "config.yaml").read_text())
    assert config["planner"] == "constant_velocity" and config["out"] == str(out) and "hydra" not in config
    assert yaml.safe_load((record / "overrides.yaml").read_text()) == [*SMALL_EVAL, f"out={out}"]
    assert yaml.safe_load((record / "hydra.yaml").read_text())["hydra"]["runtime"]["output_dir"] == str(out)
    # A rerun that the command refuses (out holds results) leaves the earlier run's record as it was.
    before = {p.name: p.read_bytes() for p in record.iterdir()}
    assert main(["eval", "closed_loop", *SMALL_EVAL, "seed=5", f"out={out}"]) == 1
    assert "already holds the results" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in record.iterdir()} == before


def test_run_subcommand_runs_through_hydra_and_returns_the_result(tmp_path):
    run = run_subcommand("eval", "closed_loop", [*SMALL_EVAL, f"out={tmp_path / 'run'}"])
    assert (run.planner, run.num_episodes) == ("constant_velocity", 1)
    assert yaml.safe_load((tmp_path / "run" / ".hydra" / "config.yaml").read_text())["suite"] == "smoke"


def test_multirun_over_two_planners_and_two_suites_writes_four_run_dirs(tmp_path, capsys):
    out = tmp_path / "sweep"
    planners, suites = ("constant_velocity", "expert"), ("nominal", "ncap_side")
    args = ["eval", "closed_loop", "-m", f"planner={','.join(planners)}", f"suite={','.join(suites)}", "episodes=1", "workers=1",
            "videos=0", "runner.image_height=32", "runner.image_width=64", "hydra/launcher=basic", f"out={out}"]
    assert main(args) == 0
    assert "4 jobs done" in capsys.readouterr().err
    assert (out / "multirun.yaml").is_file()
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["0", "1", "2", "3"]
    seen = set()
    for run in runs:
        config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
        assert config["out"] == str(run)  # each job wrote into its own run dir
        metrics = json.loads((run / "metrics.json").read_text())
        assert (metrics["planner"], metrics["suite"], metrics["num_episodes"]) == (config["planner"], config["suite"], 1)
        assert (run / ".hydra" / "overrides.yaml").is_file() and (run / ".hydra" / "hydra.yaml").is_file()
        seen.add((config["planner"], config["suite"]))
    assert seen == set(itertools.product(planners, suites))


def test_commands_without_an_output_dir_create_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "sim", *BENCH_SIM]) == 0
    assert json.loads(capsys.readouterr().out)["image_hw"] == [36, 64]  # stdout holds the JSON alone
    assert main(["bench", "sim", "-m", "height=36,40", *BENCH_SIM[1:]]) == 0
    assert "2 jobs done" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_help_shows_the_yaml_files_with_their_comments_and_the_composed_config(capsys):
    assert main(["eval", "closed_loop", "--help"]) == 0
    out = capsys.readouterr().out
    for name in ("eval/closed_loop", "runner/default", "baselines/default"):
        text = (CONFIG_DIR / f"{name}.yaml").read_text()
        comments = [line for line in text.splitlines() if "#" in line]
        assert comments and all(line in out for line in comments), name
    assert "# ==== composed" in out and "-m/--multirun" in out


def test_logging_is_given_back_after_a_command(tmp_path, monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a fresh process: nothing configured yet
    level = root.level
    assert main(["eval", "closed_loop", *SMALL_EVAL, f"out={tmp_path / 'run'}"]) == 0
    assert (root.handlers, root.level) == ([], level)  # the next in-process caller configures its own


def test_every_log_line_is_printed_once(tmp_path):
    clips = tmp_path / "clips"
    with ClipStoreWriter(clips, "test", {"t": 1}, codec="png") as w:
        w.add("item", [road_like_clip("clip", 6, 32, 64, seed=0)])
    args = [f"clips={clips}", f"out={tmp_path / 'tok'}", "tokenizer.model.base_channels=8", "tokenizer.batch_size=4", "tokenizer.max_steps=1",
            "tokenizer.val_frames=2", "tokenizer.eval_frames=2", "tokenizer.val_every_n_steps=1", "tokenizer.checkpoint_every_n_steps=1",
            "tokenizer.num_workers=0", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.progress_bar=false"]
    done = subprocess.run([sys.executable, "-m", "foresight.cli", "train", "tokenizer", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout + done.stderr
    assert printed.count("`Trainer.fit` stopped") == 1, printed  # a Lightning line
    assert printed.count("GPU available:") == 1, printed
    assert printed.count("world_model.tokenizer.train: tokenizer:") == 1, printed  # one of ours
