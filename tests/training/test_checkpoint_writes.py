"""A kill while a checkpoint is written never leaves a cut-short checkpoint under its name (the write
goes to a partial file in the same directory, renamed over the target when whole), and a run killed
while writing its very first checkpoint starts over on the same command instead of asking for
trainer.overwrite=true: nothing of it could be resumed, so nothing is lost."""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch

from foresight.training import TrainerSettings, TrainingStage, UnreadableCheckpoints, prepare_run
from foresight.training.loop import build_trainer
from foresight.training.run_record import RunRecord

SETTINGS = dict(accelerator="cpu", devices=1, num_nodes=1, strategy="auto", precision="32-true", threads=None, fsdp_sharding="SHARD_GRAD_OP",
                accumulate_grad_batches=1, loggers=(), wandb_mode="disabled", wandb_project="foresight", monitors=(), progress_bar=False,
                keep_checkpoints=3, ckpt_path=None, ema_decay=None, overwrite=False)  # fmt: skip
CONFIG = {"toy": {"max_steps": 6, "lr": 0.1}}


class Killed(BaseException):
    """Stands for SIGKILL arriving in the middle of a write."""


def stage(out: Path, **config) -> TrainingStage:
    return TrainingStage(name="toy", out=out, max_steps=6, val_every_n_steps=2, checkpoint_every_n_steps=2, log_every_n_steps=1, grad_clip=0.0,
                         architecture=(), fsdp_units=(), config={"toy": {**CONFIG["toy"], **config}}, max_steps_key="toy.max_steps", exports=("toy.safetensors",))


def settings(**changes) -> TrainerSettings:
    return TrainerSettings(**{**SETTINGS, **changes})


def checkpoint_bytes(step: int) -> bytes:
    """A Lightning-like training checkpoint of `step` (a few MB, so a cut-short copy is plainly partial)."""
    buffer = io.BytesIO()
    torch.save({"global_step": step, "state_dict": {"w": torch.full((1 << 19,), float(step))}, "optimizer_states": [], "loops": {}}, buffer)
    return buffer.getvalue()


def other_filesystem_tmp(path: Path) -> Path:
    """A temporary directory on another filesystem than `path` (where moving a file is a copy)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == path.stat().st_dev or not os.access(shm, os.W_OK):
        pytest.skip("needs /dev/shm on another filesystem than the test's tmp_path")
    return Path(tempfile.mkdtemp(dir=shm))


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    out = tmp_path / "run"
    io_plugin = build_trainer(stage(out), settings(), has_validation=False).strategy.checkpoint_io
    target = out / "checkpoints" / "last.ckpt"
    io_plugin.save_checkpoint({"global_step": 2, "state_dict": {"w": torch.ones(4)}}, target)
    # The system's temporary directory on another filesystem (as /tmp on tmpfs is), and the kill lands
    # half-way through the bytes of the next write, whichever way the checkpoint IO puts them on disk.
    monkeypatch.setattr(tempfile, "tempdir", str(other_filesystem_tmp(tmp_path)))

    def copy_half_then_die(fsrc, fdst, *args, **kwargs):
        fdst.write(fsrc.read()[: os.fstat(fsrc.fileno()).st_size // 2])
        fdst.flush()
        raise Killed

    def die(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(shutil, "_fastcopy_sendfile", copy_half_then_die)
    monkeypatch.setattr(shutil, "copyfileobj", copy_half_then_die)
    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(Killed):
        io_plugin.save_checkpoint({"global_step": 4, "state_dict": {"w": torch.ones(1 << 19)}}, target)
    monkeypatch.undo()
    assert zipfile.is_zipfile(target), "a cut-short checkpoint was left under the real name"
    assert torch.load(target, weights_only=True)["global_step"] == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]  # no partial file left either


def test_a_run_killed_during_its_first_checkpoint_starts_over(tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    RunRecord.fresh(stage(out).config, 6).write(out)  # what the killed run recorded before its first step
    first = out / "checkpoints" / "epoch=0-step=2.ckpt"
    first.parent.mkdir(parents=True)
    whole = checkpoint_bytes(2)
    first.write_bytes(whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING):
        start = prepare_run(stage(out), settings(), seed=0)
    assert start.checkpoint is None and start.start_step == 0
    assert not first.exists() and (out / "checkpoints" / "cut_short" / first.name).read_bytes() == whole[: len(whole) // 2]  # kept aside
    assert "starting over" in caplog.text


@pytest.mark.parametrize("case", ["later checkpoint", "another config", "an export"])
def test_a_cut_short_checkpoint_with_anything_else_of_a_run_still_needs_overwrite(tmp_path, case):
    out = tmp_path / "run"
    out.mkdir()
    RunRecord.fresh(stage(out, lr=0.2 if case == "another config" else 0.1).config, 6).write(out)
    directory = out / "checkpoints"
    directory.mkdir(parents=True)
    name, step = ("epoch=1-step=4.ckpt", 4) if case == "later checkpoint" else ("epoch=0-step=2.ckpt", 2)
    whole = checkpoint_bytes(step)
    (directory / name).write_bytes(whole[: len(whole) // 2])
    if case == "an export":
        (out / "toy.safetensors").write_bytes(b"weights of a finished run")
    with pytest.raises(UnreadableCheckpoints, match="overwrite"):
        prepare_run(stage(out), settings(), seed=0)
    assert (directory / name).is_file()
    assert prepare_run(stage(out), settings(overwrite=True), seed=0).checkpoint is None
