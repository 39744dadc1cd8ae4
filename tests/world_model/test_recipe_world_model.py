"""The training recipe: exact resume after a kill, and stage 1 -> stage 2 (weights + optimizer state,
decay-only schedule, a weighted mix of differently-configured token sources)."""

from __future__ import annotations

import copy
import csv

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from tests.settings import wsd
from tests.training.callbacks import Kill, LossRecorder
from tests.world_model.conftest import dash_store, world_model_config
from world_model.train import train_world_model


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two differently-configured token sources: 5 Hz clips, and 10 Hz clips the model sees at 5 Hz."""
    root = tmp_path_factory.mktemp("sources")
    return {
        "a": dash_store(root / "a_5hz", n_clips=6, n_frames=10, fps=5.0, speeds=(1,), seed=1),
        "b": dash_store(root / "b_10hz", n_clips=4, n_frames=20, fps=10.0, speeds=(1, 2), seed=2),
    }


def test_rerunning_a_killed_run_continues_the_same_loss_curve(sources, tmp_path):
    args = [f"tokens=[{sources['a']},{sources['b']}]", "world_model.max_steps=6", "world_model.checkpoint_every_n_steps=3",
            "world_model.val_every_n_steps=3", "world_model.model.dropout=0.1"]  # dropout: the RNG state must resume too
    whole = LossRecorder()
    train_world_model(world_model_config([*args, f"out={tmp_path / 'whole'}"]), [whole])
    assert sorted(whole.losses) == [1, 2, 3, 4, 5, 6]

    killed = world_model_config([*args, f"out={tmp_path / 'killed'}"])
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_world_model(killed, [Kill(at_step=4)])  # dies during step 5; last.ckpt holds step 3
    assert torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    resumed = LossRecorder()
    summary = train_world_model(killed, [resumed]).summary  # the same command again
    assert sorted(resumed.losses) == [4, 5, 6] and summary["steps_this_run"] == 3
    assert [resumed.losses[s] for s in (4, 5, 6)] == [whole.losses[s] for s in (4, 5, 6)]  # bit-exact
    whole_summary = train_world_model(world_model_config([*args, f"out={tmp_path / 'whole'}"])).summary  # finished: no steps
    assert whole_summary["steps_this_run"] == 0 and summary["realised_counts"] == whole_summary["realised_counts"]


class InitialState(Callback):
    """Weights, optimizer state and LR when training starts."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.weights = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        self.optimizer = copy.deepcopy(trainer.optimizers[0].state_dict())  # training mutates the state in place
        self.lr = trainer.optimizers[0].param_groups[0]["lr"]


def test_stage1_then_stage2_from_its_weights_and_optimizer_state_on_the_configured_mix(sources, tmp_path):
    stage1 = train_world_model(world_model_config([
        "experiment=stage1", f"sources.opendv.tokens={sources['a']}", f"sources.synth.tokens={sources['b']}",
        f"out={tmp_path / 'stage1'}", "world_model.max_steps=6", "world_model.batch_size=10", "world_model.checkpoint_every_n_steps=3",
    ])).summary
    assert stage1["configured_mix"] == pytest.approx({"opendv": 0.8, "synth": 0.2})
    for name, p in stage1["configured_mix"].items():
        assert abs(stage1["realised_mix"][name] - p) <= 0.02

    last1 = tmp_path / "stage1" / "checkpoints" / "last.ckpt"
    saved = torch.load(last1, weights_only=True)
    assert saved["global_step"] == 6
    start, lr2 = InitialState(), LossRecorder()
    args2 = [
        "experiment=stage2", f"init_from={last1}", f"sources.opendv.tokens={sources['a']}", f"sources.nuplan.tokens={sources['b']}",
        f"sources.nuscenes.tokens={sources['a']}", f"out={tmp_path / 'stage2'}", "world_model.max_steps=10",
        "world_model.batch_size=10", "world_model.checkpoint_every_n_steps=10",
    ]
    config2 = world_model_config(args2)
    peak_lr = config2.world_model.lr
    result = train_world_model(config2, [start, lr2])
    stage2 = result.summary
    # Stage 2 started from stage 1's weights and AdamW state (moments and step counts).
    assert result.init_step == 6 and stage2["init_from"]["step"] == 6
    for key, value in saved["state_dict"].items():
        assert torch.equal(start.weights[key], value), key
    theirs, ours = saved["optimizer_states"][0]["state"], start.optimizer["state"]
    assert set(theirs) == set(ours)
    for index, state in theirs.items():
        assert float(ours[index]["step"]) == 6.0
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(ours[index][name], state[name])
    # ...under its own schedule: the WSD decay only, from the peak LR down to final_frac of it.
    schedule = wsd(10, decay_frac=1.0)
    assert start.lr == pytest.approx(peak_lr * schedule.factor(0))
    lrs = [lr2.lrs[s] for s in sorted(lr2.lrs)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[0] > lrs[-1] == pytest.approx(0.1 * peak_lr)
    # The realised mix of the stage-2 windows is the configured 40 / 59 / 1 within 2 points.
    assert stage2["configured_mix"] == pytest.approx({"opendv": 0.40, "nuplan": 0.59, "nuscenes": 0.01})
    assert sum(stage2["realised_counts"].values()) == 100
    for name, p in stage2["configured_mix"].items():
        assert abs(stage2["realised_mix"][name] - p) <= 0.02, (name, stage2["realised_mix"])
    with open(next((tmp_path / "stage2" / "logs").rglob("metrics.csv"))) as f:
        logged = [row for row in csv.DictReader(f) if row.get("mix/nuplan")]
    assert float(logged[-1]["mix/nuplan"]) == pytest.approx(stage2["realised_mix"]["nuplan"])
    # Rerunning stage 2 resumes its own checkpoint (init_from is not applied twice).
    again = train_world_model(world_model_config(args2))
    assert again.init_step is None and again.summary["steps_this_run"] == 0 and again.summary["steps"] == 10
