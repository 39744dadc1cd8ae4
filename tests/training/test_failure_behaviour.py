"""How the one training loop fails (issue #17): a non-finite config or loss stops the run naming the
key or the step and keeps the last finite checkpoint; a rerun with another config is refused with
the differing keys unless trainer.overwrite=true; a truncated last.ckpt falls back to the newest
intact checkpoint; a run stopped by SIGTERM exits non-zero and is not finished; the tokenizer
resumes bit for bit like the other stages."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from configs import compose
from foresight.cli import main
from foresight.training import NonFiniteTrainingError, TrainingInterrupted, UnreadableCheckpoints
from tests.training.callbacks import Kill, LossRecorder
from tests.world_model.conftest import dash_store, world_model_config
from world_model.tokenizer.train import run_train
from world_model.train import train_world_model

TOKENIZER = [
    "tokenizer.model.base_channels=8", "tokenizer.batch_size=4", "tokenizer.warmup_steps=1", "tokenizer.lr=2e-3",
    "tokenizer.val_frames=2", "tokenizer.val_every_n_steps=2", "tokenizer.checkpoint_every_n_steps=2", "tokenizer.eval_frames=4",
    "tokenizer.num_workers=0", "tokenizer.log_every_n_steps=1", "tokenizer.max_steps=6",
    "trainer.accelerator=cpu", "trainer.devices=1", "trainer.progress_bar=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def tokens_dir(tmp_path_factory):
    return dash_store(tmp_path_factory.mktemp("tokens") / "dash", n_clips=4, n_frames=8, fps=5.0)


def tokenizer_config(road_clips_dir, out, *overrides: str):
    return compose("train/tokenizer", [f"clips={road_clips_dir}", f"out={out}", *TOKENIZER, *overrides])


def tokenizer_args(road_clips_dir, out, *overrides: str) -> list[str]:
    return ["train", "tokenizer", f"clips={road_clips_dir}", f"out={out}", *TOKENIZER, *overrides]


def steps_of(directory) -> list[int]:
    return sorted(torch.load(p, weights_only=True)["global_step"] for p in directory.glob("epoch=*-step=*.ckpt"))


class PoisonWeights(Callback):
    """A run that diverges at optimizer step `at_step` (0-based, like `Kill`). before_loss: the
    decoder's weights become NaN before that step's forward (its loss is NaN); else every weight
    becomes NaN after its update (its loss was finite, the weights are not)."""

    def __init__(self, at_step: int, before_loss: bool) -> None:
        self.at_step, self.before_loss = at_step, before_loss

    @staticmethod
    def _poison(module) -> None:
        with torch.no_grad():
            for p in module.parameters():
                p.fill_(float("nan"))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.before_loss and trainer.global_step == self.at_step:
            self._poison(pl_module.model.decoder)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.before_loss and trainer.global_step == self.at_step + 1:
            self._poison(pl_module)


class Terminate(Callback):
    """Sends this process SIGTERM at the start of optimizer step `at_step` (0-based), as a scheduler would."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            os.kill(os.getpid(), signal.SIGTERM)


# --- item 3: non-finite numbers --------------------------------------------------------------------


def test_non_finite_numbers_in_a_config_are_refused_naming_the_key(road_clips_dir, tokens_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"world_model\.lr"):
        train_world_model(world_model_config([f"tokens={tokens_dir}", f"out={tmp_path / 'wm'}", "world_model.lr=nan"]))
    with pytest.raises(ValueError, match=r"world_model\.betas\[1\]"):
        train_world_model(world_model_config([f"tokens={tokens_dir}", f"out={tmp_path / 'wm'}", "world_model.betas=[0.9,inf]"]))
    assert main(tokenizer_args(road_clips_dir, tmp_path / "tok", "tokenizer.lr=nan")) == 1
    assert "tokenizer.lr" in capsys.readouterr().err
    # The planner checks its numbers before it opens any input (these paths do not exist).
    assert (
        main(
            [
                "train",
                "planner",
                "world_model=nowhere",
                "tokenizer=nowhere",
                "clips=nowhere",
                "tokens=nowhere",
                f"out={tmp_path / 'planner'}",
                "planner.train.lr=-inf",
            ]
        )
        == 1
    )
    assert "planner.train.lr" in capsys.readouterr().err
    assert not (tmp_path / "wm").exists() and not (tmp_path / "tok" / "checkpoints").exists()


def test_a_nan_loss_stops_training_naming_the_step_and_exports_nothing(road_clips_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteTrainingError, match="step 5") as error:
        run_train(tokenizer_config(road_clips_dir, out), [PoisonWeights(at_step=4, before_loss=True)])
    assert isinstance(error.value, ValueError)  # the CLI reports it as one line and exits 1
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4  # the last finite state, kept
    assert steps_of(out / "checkpoints") == [2, 4]
    assert not (out / "checkpoints" / "final.ckpt").exists() and not (out / "tokenizer.safetensors").exists()
    assert not (out / "train_summary.json").exists()


def test_non_finite_weights_never_replace_the_last_finite_checkpoint(road_clips_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteTrainingError, match="step 4"):  # the loss of step 4 was finite; its update was not
        run_train(tokenizer_config(road_clips_dir, out), [PoisonWeights(at_step=3, before_loss=False)])
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2 and all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert steps_of(out / "checkpoints") == [2] and not (out / "tokenizer.safetensors").exists()


# --- item 4: a rerun with another config -------------------------------------------------------------


def test_resuming_with_another_config_is_refused_listing_the_keys(road_clips_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_train(tokenizer_config(road_clips_dir, out), [Kill(at_step=3)])  # last.ckpt holds step 2
    recorded = json.loads((out / "run_config.json").read_text())
    assert recorded["config"]["tokenizer"]["lr"] == 2e-3 and recorded["config"]["clips"] == str(road_clips_dir)

    with pytest.raises(ValueError, match=r"tokenizer\.lr: 0\.002 -> 0\.5") as error:
        run_train(tokenizer_config(road_clips_dir, out, "tokenizer.lr=0.5", "tokenizer.seed=3"))
    assert "tokenizer.seed: 0 -> 3" in str(error.value) and "trainer.overwrite=true" in str(error.value)
    assert json.loads((out / "run_config.json").read_text()) == recorded  # nothing recorded, nothing trained

    # Keys that change how a run is shown or how fast it loads, not what it computes, may change.
    resumed = LossRecorder()
    run_train(tokenizer_config(road_clips_dir, out, "tokenizer.log_every_n_steps=2", "trainer.keep_checkpoints=5", "trainer.loggers=[]"), [resumed])
    assert sorted(resumed.losses) == [3, 4, 5, 6]


def test_a_finished_run_refuses_another_config_and_overwrite_starts_a_fresh_one(road_clips_dir, tmp_path):
    out = tmp_path / "run"
    run_train(tokenizer_config(road_clips_dir, out))
    exported = json.loads((out / "tokenizer.json").read_text())
    with pytest.raises(ValueError, match=r"tokenizer\.lr: 0\.002 -> 0\.5"):
        run_train(tokenizer_config(road_clips_dir, out, "tokenizer.lr=0.5"))
    assert json.loads((out / "tokenizer.json").read_text()) == exported  # not rewritten to claim lr 0.5
    with pytest.raises(ValueError, match=r"tokenizer\.max_steps: 6 -> 4"):  # cannot un-train two steps
        run_train(tokenizer_config(road_clips_dir, out, "tokenizer.max_steps=4"))

    fresh = LossRecorder()
    summary = run_train(tokenizer_config(road_clips_dir, out, "tokenizer.lr=0.5", "trainer.overwrite=true"), [fresh])
    assert summary["steps_this_run"] == 6 and sorted(fresh.losses) == [1, 2, 3, 4, 5, 6]
    assert summary["config"]["lr"] == 0.5 and json.loads((out / "run_config.json").read_text())["config"]["tokenizer"]["lr"] == 0.5
    assert len(list((out / "logs").iterdir())) == 1  # the old run's logs went with it
    again = run_train(tokenizer_config(road_clips_dir, out, "tokenizer.lr=0.5", "trainer.overwrite=true"))  # same config: resumes, 0 steps
    assert again["steps_this_run"] == 0
    longer = run_train(tokenizer_config(road_clips_dir, out, "tokenizer.lr=0.5", "tokenizer.max_steps=8"))  # max_steps may grow
    assert longer["steps_this_run"] == 2
    segments = json.loads((out / "run_config.json").read_text())["segments"]
    assert segments == [{"from_step": 0, "max_steps": 6}, {"from_step": 6, "max_steps": 8}]


def test_a_world_model_rerun_with_another_lr_is_refused(tokens_dir, road_clips_dir, tmp_path):
    args = [
        f"tokens={tokens_dir}",
        f"out={tmp_path / 'wm'}",
        "world_model.max_steps=2",
        "world_model.checkpoint_every_n_steps=2",
        "world_model.val_every_n_steps=2",
    ]
    train_world_model(world_model_config(args))
    exported = (tmp_path / "wm" / "world_model.json").read_text()
    with pytest.raises(ValueError, match=r"world_model\.lr: 0\.002 -> 0\.5"):
        train_world_model(world_model_config([*args, "world_model.lr=0.5"]))
    assert (tmp_path / "wm" / "world_model.json").read_text() == exported
    # The tokenizer pointed at that dir (as a run from before run records: no run_config.json) is told
    # what the checkpoint is, and writes nothing there.
    (tmp_path / "wm" / "run_config.json").unlink()
    before = sorted(p.name for p in (tmp_path / "wm").iterdir())
    with pytest.raises(ValueError, match=r"not a checkpoint of this stage: it has no 'tokenizer' settings"):
        run_train(tokenizer_config(road_clips_dir, tmp_path / "wm"))
    assert sorted(p.name for p in (tmp_path / "wm").iterdir()) == before


# --- item 6: the tokenizer resumes bit for bit ----------------------------------------------------


def test_a_killed_tokenizer_run_resumes_to_the_same_losses_and_weights(road_clips_dir, tmp_path):
    overrides = ["tokenizer.max_steps=12", "tokenizer.checkpoint_every_n_steps=4", "tokenizer.val_every_n_steps=3"]
    whole = LossRecorder()
    run_train(tokenizer_config(road_clips_dir, tmp_path / "whole", *overrides), [whole])
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_train(tokenizer_config(road_clips_dir, tmp_path / "killed", *overrides), [Kill(at_step=10)])  # last.ckpt holds step 8
    resumed = LossRecorder()
    run_train(tokenizer_config(road_clips_dir, tmp_path / "killed", *overrides), [resumed])
    assert sorted(resumed.losses) == [9, 10, 11, 12]
    assert [resumed.losses[s] for s in (9, 10, 11, 12)] == [whole.losses[s] for s in (9, 10, 11, 12)]
    a, b = (load_file(tmp_path / d / "tokenizer.safetensors") for d in ("whole", "killed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- item 9: a truncated last.ckpt ------------------------------------------------------------------


def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def uninterrupted(road_clips_dir, tmp_path_factory):
    whole = LossRecorder()
    run_train(tokenizer_config(road_clips_dir, tmp_path_factory.mktemp("whole")), [whole])
    return whole.losses


def killed_at_step_5(road_clips_dir, out):
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_train(tokenizer_config(road_clips_dir, out), [Kill(at_step=4)])  # checkpoints at steps 2 and 4; last.ckpt = 4


@pytest.mark.parametrize("broken, resumed_at", [(("last.ckpt",), 4), (("last.ckpt", "epoch=1-step=4.ckpt"), 2)])
def test_a_truncated_last_checkpoint_falls_back_to_the_newest_intact_one(road_clips_dir, tmp_path, uninterrupted, caplog, broken, resumed_at):
    out = tmp_path / "run"
    killed_at_step_5(road_clips_dir, out)
    for name in broken:
        truncate(out / "checkpoints" / name)
    resumed = LossRecorder()
    with caplog.at_level(logging.WARNING):
        run_train(tokenizer_config(road_clips_dir, out), [resumed])
    assert all(str(out / "checkpoints" / name) in caplog.text for name in broken)
    assert sorted(resumed.losses) == list(range(resumed_at + 1, 7))
    assert all(resumed.losses[s] == uninterrupted[s] for s in resumed.losses)  # still exact


def test_no_intact_checkpoint_is_a_clear_error_naming_the_files(road_clips_dir, tmp_path, capsys):
    out = tmp_path / "run"
    killed_at_step_5(road_clips_dir, out)
    for path in (out / "checkpoints").glob("*.ckpt"):
        truncate(path)
    with pytest.raises(UnreadableCheckpoints, match="last.ckpt") as error:
        run_train(tokenizer_config(road_clips_dir, out))
    assert "epoch=0-step=2.ckpt" in str(error.value) and "epoch=1-step=4.ckpt" in str(error.value)
    assert main(tokenizer_args(road_clips_dir, out)) == 1 and "last.ckpt" in capsys.readouterr().err
    summary = run_train(tokenizer_config(road_clips_dir, out, "trainer.overwrite=true"))  # or start afresh there
    assert summary["steps_this_run"] == 6


# --- a run stopped by a signal ------------------------------------------------------------------------


def test_a_run_stopped_by_sigterm_exits_non_zero_and_is_not_finished(road_clips_dir, tmp_path, uninterrupted):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        run_train(tokenizer_config(road_clips_dir, out), [Terminate(at_step=3)])
    assert isinstance(stopped.value, TrainingInterrupted) and stopped.value.code == 128 + signal.SIGTERM
    assert "SIGTERM" in str(stopped.value) and "step" in str(stopped.value)
    assert not (out / "train_summary.json").exists() and not (out / "tokenizer.safetensors").exists()
    assert not (out / "checkpoints" / "final.ckpt").exists()
    resumed = LossRecorder()
    summary = run_train(tokenizer_config(road_clips_dir, out), [resumed])  # the same command finishes it, exactly
    assert summary["steps"] == 6 and all(resumed.losses[s] == uninterrupted[s] for s in resumed.losses)


def test_the_command_exits_143_when_sigterm_stops_training(road_clips_dir, tmp_path):
    out = tmp_path / "run"
    args = tokenizer_args(road_clips_dir, out, "tokenizer.max_steps=100000", "trainer.threads=1")
    process = subprocess.Popen([sys.executable, "-m", "foresight.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "last.ckpt").is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM" in output and not (out / "tokenizer.safetensors").exists() and not (out / "train_summary.json").exists()
