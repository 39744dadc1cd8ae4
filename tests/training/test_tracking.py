"""Tracking and control of every training stage through the one loop (issue #16, item 2):
TensorBoard and offline wandb logs with learning-rate and throughput monitors, checkpoint retention,
resuming from a chosen checkpoint (trainer.ckpt_path), gradient accumulation counted in optimizer
steps, and a moving average of the weights (trainer.ema_decay) that the export uses."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from configs import compose
from foresight.cli import main
from foresight.training import TrainerSettings
from foresight.training.run_record import RunRecord
from tests.planner.conftest import tiny_pipeline, train_args  # noqa: F401 - the session fixture of the tiny planner pipeline
from tests.training.callbacks import Kill, LossRecorder
from tests.training.test_failure_behaviour import tokenizer_args, tokenizer_config, tokens_dir  # noqa: F401 - fixtures
from tests.world_model.conftest import world_model_config
from world_model.tokenizer.train import run_train
from world_model.train import train_world_model


def scalars(out) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of every scalar in the TensorBoard event files under out/tensorboard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    event_files = sorted((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert event_files, f"no TensorBoard event file under {out / 'tensorboard'}"
    for path in event_files:
        events = EventAccumulator(str(path))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    return found


class BatchesPerStep(Callback):
    """How many training batches each optimizer step took, keyed by the step (1-based), and the
    global step when fit started."""

    def __init__(self) -> None:
        self.batches: dict[int, int] = {}
        self.start_step: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_step = trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step + 1  # the optimizer step this batch is part of
        self.batches[step] = self.batches.get(step, 0) + 1


def periodic_steps(out) -> list[int]:
    return sorted(torch.load(p, weights_only=True)["global_step"] for p in (out / "checkpoints").glob("epoch=*-step=*.ckpt"))


# --- loggers and monitors ------------------------------------------------------------------------


def check_tensorboard(out, steps: int, lr_tag: str) -> None:
    found = scalars(out)
    assert sorted(step for step, _ in found["train/loss"]) == list(range(steps))  # Lightning's 0-based step index
    assert all(torch.isfinite(torch.tensor(v)) for _, v in found["train/loss"])
    lrs = [tag for tag in found if tag.startswith(lr_tag)]
    assert lrs and all(sorted(s for s, _ in found[tag]) == list(range(steps)) for tag in lrs)  # once per optimizer step
    assert all(value > 0 for tag in lrs for _, value in found[tag])
    assert sorted(s for s, _ in found["throughput/samples_per_s"]) == list(range(steps)) and all(v > 0 for _, v in found["throughput/samples_per_s"])


def test_the_tokenizer_logs_loss_lr_and_throughput_to_tensorboard(road_clips_dir, tmp_path):  # noqa: F811
    out = tmp_path / "tok"
    run_train(tokenizer_config(road_clips_dir, out, "tokenizer.max_steps=4", "trainer.loggers=[tensorboard]"))
    check_tensorboard(out, 4, "lr-AdamW")
    assert not (out / "logs").exists()  # only the loggers asked for


def test_the_world_model_logs_loss_lr_throughput_and_tokens_to_tensorboard(tokens_dir, tmp_path):  # noqa: F811
    out = tmp_path / "wm"
    result = train_world_model(world_model_config([f"tokens={tokens_dir}", f"out={out}", "world_model.max_steps=3", "trainer.loggers=[csv,tensorboard]"]))
    check_tensorboard(out, 3, "lr-AdamW")
    found = scalars(out)
    gpt = result.module.gpt_config
    ratio = [t / s for (_, t), (_, s) in zip(found["throughput/tokens_per_s"], found["throughput/samples_per_s"])]
    assert ratio == pytest.approx([gpt.max_tokens] * 3)  # tokens of one window per sample
    assert next((out / "logs").rglob("metrics.csv")).is_file()


def test_the_planner_logs_loss_lr_and_throughput_to_tensorboard(tiny_pipeline, tmp_path):  # noqa: F811
    out = tmp_path / "planner"
    assert main(train_args(tiny_pipeline, out, "trainer.loggers=[tensorboard]")) == 0
    check_tensorboard(out, 4, "lr-AdamW")


def test_wandb_offline_writes_its_run_locally_and_a_resumed_run_keeps_its_id(road_clips_dir, tmp_path, monkeypatch):  # noqa: F811
    pytest.importorskip("wandb")
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    out = tmp_path / "tok"
    run_train(tokenizer_config(road_clips_dir, out, "tokenizer.max_steps=2", "trainer.loggers=[wandb]"))
    (first,) = (out / "wandb").glob("offline-run-*")
    assert list(first.glob("run-*.wandb")) and not (out / "logs").exists()
    run_id = (out / "wandb" / "run_id").read_text().strip()
    assert first.name.endswith(run_id)
    run_train(tokenizer_config(road_clips_dir, out, "tokenizer.max_steps=4", "trainer.loggers=[wandb]"))  # goes on in the same wandb run
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(run_id) for r in runs)


# --- retention -------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep, kept", [(None, [4, 6, 8]), (2, [6, 8]), (-1, [2, 4, 6, 8])])
def test_retention_keeps_the_newest_periodic_checkpoints_besides_last_and_final(road_clips_dir, tmp_path, keep, kept):  # noqa: F811
    out = tmp_path / "run"
    extra = [] if keep is None else [f"trainer.keep_checkpoints={keep}"]
    run_train(tokenizer_config(road_clips_dir, out, "tokenizer.max_steps=8", "trainer.loggers=[]", *extra))
    assert periodic_steps(out) == kept  # the default keeps three
    assert {p.name for p in (out / "checkpoints").glob("*.ckpt")} - {p.name for p in (out / "checkpoints").glob("epoch=*")} == {"last.ckpt", "final.ckpt"}


# --- trainer.ckpt_path -----------------------------------------------------------------------------


def test_ckpt_path_resumes_from_the_chosen_older_checkpoint_exactly(road_clips_dir, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    whole = LossRecorder()
    run_train(tokenizer_config(road_clips_dir, out, "trainer.keep_checkpoints=-1"), [whole])  # checkpoints at 2, 4, 6
    trained = load_file(out / "tokenizer.safetensors")
    chosen = out / "checkpoints" / "epoch=0-step=2.ckpt"
    again, probe = LossRecorder(), BatchesPerStep()
    summary = run_train(tokenizer_config(road_clips_dir, out, "trainer.keep_checkpoints=-1", f'trainer.ckpt_path="{chosen}"'), [again, probe])
    assert probe.start_step == 2 and sorted(again.losses) == [3, 4, 5, 6] and summary["steps_this_run"] == 4
    assert all(again.losses[s] == whole.losses[s] for s in again.losses)  # the same steps again, exactly
    exported = load_file(out / "tokenizer.safetensors")
    assert all(torch.equal(exported[k], trained[k]) for k in trained)
    # The later checkpoints of the first pass were set aside, not mixed with the ones written again.
    assert sorted(p.name for p in (out / "checkpoints" / "superseded").iterdir()) == ["epoch=1-step=4.ckpt", "epoch=2-step=6.ckpt", "final.ckpt", "last.ckpt"]
    assert periodic_steps(out) == [2, 4, 6] and not list((out / "checkpoints").glob("*-v*.ckpt"))
    segments = json.loads((out / "run_config.json").read_text())["segments"]
    assert segments[-1] == {"from_step": 2, "max_steps": 6, "ckpt_path": str(chosen.resolve())}


def test_ckpt_path_of_another_directory_starts_a_new_run_from_it(road_clips_dir, tmp_path):  # noqa: F811
    first = tmp_path / "first"
    whole = LossRecorder()
    run_train(tokenizer_config(road_clips_dir, first, "trainer.keep_checkpoints=-1"), [whole])
    branch = LossRecorder()
    run_train(tokenizer_config(road_clips_dir, tmp_path / "branch", f"trainer.ckpt_path='{first / 'checkpoints' / 'epoch=1-step=4.ckpt'}'"), [branch])
    assert sorted(branch.losses) == [5, 6] and all(branch.losses[s] == whole.losses[s] for s in branch.losses)
    with pytest.raises(ValueError, match=r"tokenizer\.lr: 0\.002 -> 0\.5"):  # checked against the chosen checkpoint's own run
        run_train(tokenizer_config(road_clips_dir, tmp_path / "other", "tokenizer.lr=0.5", f"trainer.ckpt_path={first / 'checkpoints' / 'last.ckpt'}"))
    with pytest.raises(ValueError, match="holds a run of its own"):  # `out` has a run that is not the chosen one's
        escaped = str(first / "checkpoints" / "epoch=0-step=2.ckpt").replace("=", "\\=")  # or quoted, as above
        run_train(tokenizer_config(road_clips_dir, tmp_path / "branch", f"trainer.ckpt_path={escaped}"))


def test_a_missing_or_foreign_ckpt_path_is_refused_clearly(road_clips_dir, tokens_dir, tmp_path, capsys):  # noqa: F811
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        run_train(tokenizer_config(road_clips_dir, tmp_path / "a", f"trainer.ckpt_path={tmp_path / 'nowhere.ckpt'}"))
    assert main(tokenizer_args(road_clips_dir, tmp_path / "a", f"trainer.ckpt_path={tmp_path / 'nowhere.ckpt'}")) == 1
    assert "trainer.ckpt_path" in capsys.readouterr().err
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable Lightning checkpoint"):
        run_train(tokenizer_config(road_clips_dir, tmp_path / "a", f"trainer.ckpt_path={junk}"))
    weights_only = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {}, "global_step": 1}, weights_only)
    with pytest.raises(ValueError, match="not a Lightning training checkpoint"):
        run_train(tokenizer_config(road_clips_dir, tmp_path / "a", f"trainer.ckpt_path={weights_only}"))
    wm = tmp_path / "wm"
    train_world_model(world_model_config([f"tokens={tokens_dir}", f"out={wm}", "world_model.max_steps=1", "trainer.loggers=[]"]))
    with pytest.raises(ValueError, match="not a checkpoint of the tokenizer stage"):
        run_train(tokenizer_config(road_clips_dir, tmp_path / "a", f"trainer.ckpt_path={wm / 'checkpoints' / 'last.ckpt'}"))
    assert not (tmp_path / "a" / "checkpoints").exists()


# --- gradient accumulation --------------------------------------------------------------------------


def test_accumulation_takes_several_batches_per_optimizer_step_and_counts_optimizer_steps(tokens_dir, tmp_path):  # noqa: F811
    """Two batches of 2 per step train as one batch of 4: the same windows, schedule and weights."""
    common = [f"tokens={tokens_dir}", "world_model.max_steps=4", "world_model.checkpoint_every_n_steps=2", "world_model.val_every_n_steps=2",
              "trainer.precision=32-true", "trainer.loggers=[]"]
    big, accumulated = BatchesPerStep(), BatchesPerStep()
    lrs_big, lrs_acc = LossRecorder(), LossRecorder()
    one = train_world_model(world_model_config([*common, f"out={tmp_path / 'one'}", "world_model.batch_size=4"]), [big, lrs_big])
    two = train_world_model(world_model_config([*common, f"out={tmp_path / 'two'}", "world_model.batch_size=2", "trainer.accumulate_grad_batches=2"]),
                            [accumulated, lrs_acc])
    assert big.batches == {1: 1, 2: 1, 3: 1, 4: 1} and accumulated.batches == {1: 2, 2: 2, 3: 2, 4: 2}
    assert one.summary["steps"] == two.summary["steps"] == 4 and periodic_steps(tmp_path / "two") == [2, 4]
    assert {s: lrs_acc.lrs[s] for s in lrs_big.lrs} == pytest.approx(lrs_big.lrs)  # the schedule counts optimizer steps
    assert one.summary["realised_counts"] == two.summary["realised_counts"]  # the same windows
    a, b = (load_file(tmp_path / d / "world_model.safetensors") for d in ("one", "two"))
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)
    assert one.summary["val"]["val/loss"] == pytest.approx(two.summary["val"]["val/loss"], rel=1e-4)


def test_a_killed_accumulating_run_resumes_exactly(road_clips_dir, tmp_path):  # noqa: F811
    accumulate = ["trainer.accumulate_grad_batches=2", "tokenizer.batch_size=2"]
    whole = LossRecorder()
    run_train(tokenizer_config(road_clips_dir, tmp_path / "whole", *accumulate), [whole])
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_train(tokenizer_config(road_clips_dir, tmp_path / "killed", *accumulate), [Kill(at_step=3)])  # last.ckpt holds step 2
    resumed, probe = LossRecorder(), BatchesPerStep()
    run_train(tokenizer_config(road_clips_dir, tmp_path / "killed", *accumulate), [resumed, probe])
    assert probe.start_step == 2 and probe.batches == {3: 2, 4: 2, 5: 2, 6: 2}
    assert all(resumed.losses[s] == whole.losses[s] for s in resumed.losses)  # the last loss seen at each global step
    with pytest.raises(ValueError, match=r"trainer\.accumulate_grad_batches: 2 -> 1"):  # changes what the run computes
        run_train(tokenizer_config(road_clips_dir, tmp_path / "killed", "tokenizer.batch_size=2", "tokenizer.max_steps=8"))


# --- moving average of the weights ----------------------------------------------------------------


def test_the_planner_exports_its_moving_average_when_asked(tiny_pipeline, tmp_path):  # noqa: F811
    plain_out, ema_out = tmp_path / "plain", tmp_path / "ema"
    assert main(train_args(tiny_pipeline, plain_out, "trainer.loggers=[]")) == 0
    assert main(train_args(tiny_pipeline, ema_out, "trainer.loggers=[]", "trainer.ema_decay=0.5")) == 0
    plain, ema = (load_file(out / "vam" / "vam.safetensors") for out in (plain_out, ema_out))
    assert plain.keys() == ema.keys()
    trained = [k for k in plain if not k.startswith("world_model.")]
    assert any(not torch.equal(plain[k], ema[k]) for k in trained)  # the average, not the last weights
    assert all(torch.equal(plain[k], ema[k]) for k in plain if k.startswith("world_model."))  # the frozen world model stays as it was
    # The trained weights of the EMA run are those of the plain run (the average only watches them); the
    # checkpoint keeps both, and its state_dict (what evaluation reads) is the average the export holds.
    last_plain = torch.load(plain_out / "checkpoints" / "last.ckpt", weights_only=True)
    last_ema = torch.load(ema_out / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.equal(last_ema["current_model_state"][k], v) for k, v in last_plain["state_dict"].items())
    final = torch.load(ema_out / "checkpoints" / "final.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(final[f"model.{k}"], ema[k]) for k in trained)


def test_a_killed_run_with_a_moving_average_resumes_to_the_same_export(road_clips_dir, tmp_path):  # noqa: F811
    ema = ["trainer.ema_decay=0.7", "trainer.loggers=[]"]
    run_train(tokenizer_config(road_clips_dir, tmp_path / "whole", *ema))
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_train(tokenizer_config(road_clips_dir, tmp_path / "killed", *ema), [Kill(at_step=3)])
    run_train(tokenizer_config(road_clips_dir, tmp_path / "killed", *ema))
    a, b = (load_file(tmp_path / d / "tokenizer.safetensors") for d in ("whole", "killed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = tmp_path / "plain"
    run_train(tokenizer_config(road_clips_dir, plain, "trainer.loggers=[]"))
    assert any(not torch.equal(a[k], v) for k, v in load_file(plain / "tokenizer.safetensors").items())  # the average was exported


# --- settings and run records -----------------------------------------------------------------------


def test_tracking_settings_are_checked_and_neutral_where_they_do_not_change_the_run():
    trainer = dict(compose("train/tokenizer", ["clips=c", "out=o"]).trainer)
    assert trainer["loggers"] == ["csv"] and trainer["wandb_mode"] == "offline" and trainer["keep_checkpoints"] == 3
    assert trainer["accumulate_grad_batches"] == 1 and trainer["ckpt_path"] is None and trainer["ema_decay"] is None
    assert TrainerSettings.from_mapping({**trainer, "loggers": ["csv", "tensorboard", "wandb"], "wandb_mode": "online"}).wandb_mode == "online"
    for key, value, match in [("accumulate_grad_batches", 0, "accumulate_grad_batches"), ("ema_decay", 1.0, "ema_decay"),
                              ("ema_decay", float("nan"), "ema_decay"), ("monitors", ["gpu"], "monitors"), ("ckpt_path", "", "ckpt_path"),
                              ("wandb_mode", "sometimes", "wandb_mode")]:
        with pytest.raises(ValueError, match=match):
            TrainerSettings.from_mapping({**trainer, key: value})
    with pytest.raises(ValueError, match="fsdp"):
        TrainerSettings.from_mapping({**trainer, "strategy": "fsdp", "ema_decay": 0.999})

    recorded = RunRecord.fresh({"trainer": trainer, "tokenizer": {"max_steps": 6}}, 6)
    changed = {**trainer, "loggers": ["tensorboard", "wandb"], "wandb_mode": "online", "monitors": [], "keep_checkpoints": -1, "ckpt_path": "x.ckpt"}
    assert recorded.differences({"trainer": changed, "tokenizer": {"max_steps": 6}}, "tokenizer.max_steps", 2) == []
    assert recorded.differences({"trainer": {**trainer, "accumulate_grad_batches": 2}, "tokenizer": {"max_steps": 6}}, "tokenizer.max_steps", 2) == [
        "trainer.accumulate_grad_batches: 1 -> 2"]
    # A run recorded before these keys existed trained without accumulation and without an average.
    legacy = RunRecord.fresh({"trainer": {k: v for k, v in trainer.items() if k not in ("accumulate_grad_batches", "ema_decay")}}, 6)
    assert legacy.differences({"trainer": trainer}, "tokenizer.max_steps", 2) == []
    assert legacy.differences({"trainer": {**trainer, "ema_decay": 0.9}}, "tokenizer.max_steps", 2) == ["trainer.ema_decay: null -> 0.9"]
