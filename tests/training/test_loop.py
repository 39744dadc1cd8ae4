"""The one training loop's settings: precision decided on the machine, the `trainer` group's checks.
Each stage's own tests show it trains through the loop with these settings (strategy, devices,
precision, exact resume): tests/world_model/test_tokenizer_train.py, tests/world_model/test_cli_world_model.py,
tests/planner/test_cli_train_planner.py."""

from __future__ import annotations

import pytest

from configs import compose
from foresight.training import TrainerSettings, inference_precision, resolve_precision


@pytest.mark.parametrize("native_bf16, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_precision_auto_is_bf16_only_where_the_cpu_runs_it_natively(monkeypatch, native_bf16, expected):
    monkeypatch.setattr("foresight.training.precision.cpu_has_native_bf16", lambda: native_bf16)
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("auto", "gpu") == "bf16-mixed"  # CUDA: always
    assert resolve_precision("32-true", "gpu") == "32-true" and resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"  # as asked
    settings = TrainerSettings.from_mapping(compose("train/planner", ["world_model=a", "tokenizer=b", "clips=c", "tokens=d", "out=e"]).trainer)
    assert settings.precision == "auto" and settings.resolved_precision == expected


@pytest.mark.parametrize("native_bf16", [True, False])
def test_a_planner_runs_at_its_training_precision_only_where_the_device_runs_it_natively(monkeypatch, native_bf16):
    monkeypatch.setattr("foresight.training.precision.cpu_has_native_bf16", lambda: native_bf16)
    assert inference_precision("bf16-mixed", "cpu") == ("bf16" if native_bf16 else "fp32")
    assert inference_precision("bf16-true", "cpu") == ("bf16" if native_bf16 else "fp32")
    assert inference_precision("bf16-mixed", "cuda") == inference_precision("bf16-mixed", "cuda:1") == "bf16"
    assert inference_precision("32-true", "cuda") == inference_precision("16-mixed", "cuda") == inference_precision("32-true", "cpu") == "fp32"
    assert inference_precision("bf16-mixed", "meta") == "fp32"  # a device that is neither: fp32


@pytest.mark.parametrize("command", ["train/tokenizer", "train/world_model", "train/planner"])
def test_no_stage_profile_sets_a_precision_of_its_own(command):
    """Precision belongs to the `trainer` group (auto); no experiment's stage profile hard-codes one."""
    for experiment in ("tiny", "S", "B", "L"):
        cfg = compose(command, [f"experiment={experiment}", "out=o"])
        for section in ("tokenizer", "world_model", "planner"):
            text = str(cfg.get(section))
            assert "precision" not in text and "bf16" not in text, (command, experiment, section)
        assert cfg.trainer.precision == "auto"


def test_bad_trainer_settings_are_clear_errors():
    trainer = dict(compose("train/tokenizer", ["clips=c", "out=o"]).trainer)
    for key, value, match in [("strategy", "deepspeed", "strategy"), ("num_nodes", 0, "num_nodes"), ("keep_checkpoints", 0, "keep_checkpoints"),
                              ("wandb_mode", "sometimes", "wandb_mode"), ("loggers", ["mlflow"], "loggers"), ("threads", 0, "threads")]:
        with pytest.raises(ValueError, match=match):
            TrainerSettings.from_mapping({**trainer, key: value})
    with pytest.raises(ValueError, match="unknown keys"):
        TrainerSettings.from_mapping({**trainer, "cpu_precision": "auto"})
