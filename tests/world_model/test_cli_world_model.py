"""World-model command configs: every experiment composes and validates; clear errors for bad
settings; token sources (names, weights, frame rates, tokenizer identity); the speed benchmark with
and without Hugging Face transformers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from configs import compose
from foresight.cli import main, run_subcommand
from foresight.training import TrainingStage
from foresight.training.loop import lightning_strategy
from tests.training.probe import TrainerProbe
from tests.world_model.conftest import dash_clip, dash_store, world_model_config, write_token_store
from world_model.bench import BenchConfig
from world_model.gpt.model import Block
from world_model.token_sources import TokenSource, parse_sources
from world_model.train import train_world_model
from world_model.train_config import TrainWorldModelConfig

EXPERIMENTS = ["tiny", "S", "B", "L", "stage1", "stage2"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_into_valid_configs(experiment):
    cfg = compose("train/world_model", [f"experiment={experiment}", "out=x"])
    train = TrainWorldModelConfig.from_config(cfg)
    gpt = train.world_model.gpt(1000, (18, 32))
    assert gpt.max_frames == train.world_model.n_frames and train.world_model.wsd().total_steps == train.world_model.max_steps
    assert compose("train/tokenizer", [f"experiment={experiment}", "clips=c", "out=o"]).tokenizer.size
    bench = BenchConfig.from_config(compose("bench/world_model", [f"experiment={experiment}", "image_height=288", "image_width=512"]))
    assert bench.gpt.n_embd == gpt.n_embd
    if experiment in ("S", "B", "L"):
        assert (gpt.n_layer, gpt.head_dim, gpt.mup) == (24, 128, True) and train.world_model.fps == 2.0
    if experiment == "stage2":
        sched = train.world_model.wsd()
        assert sched.warmup_steps == 0 and sched.decay_start == 0  # only the decay phase
        assert {n: s["weight"] for n, s in train.sources.items()} == {"opendv": 0.40, "nuplan": 0.59, "nuscenes": 0.01}
    if experiment == "stage1":
        assert train.world_model.wsd().decay_steps == 0


@pytest.mark.parametrize("trainer", ["default", "cpu", "ddp", "fsdp"])
def test_trainer_configs(trainer):
    c = world_model_config(["tokens=t", "out=o"], trainer=trainer)
    stage = TrainingStage("world model", Path("o"), 10, 5, 5, 1, 1.0, ("gpt",), (Block,), config={}, max_steps_key="", exports=())
    strategy = lightning_strategy(c.trainer, stage)
    if trainer == "fsdp":
        assert type(strategy).__name__ == "FSDPStrategy" and c.trainer.accelerator == "gpu"
    else:
        assert strategy == c.trainer.strategy == {"default": "auto", "cpu": "auto", "ddp": "ddp"}[trainer]
    assert c.trainer.precision == "auto"  # decided on the machine that trains (foresight.training.precision)


def test_bad_settings_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="wandb_mode"):
        world_model_config(["tokens=t", "out=o", "trainer.wandb_mode=sometimes"])
    with pytest.raises(ValueError, match="trainer.threads"):
        world_model_config(["tokens=t", "out=o", "trainer.threads=0"])
    with pytest.raises(ValueError, match="loggers"):
        world_model_config(["tokens=t", "out=o", "trainer.loggers=[mlflow]"])
    with pytest.raises(ValueError, match="size must be one of"):
        world_model_config(["tokens=t", "out=o", "world_model.size=XL"])
    with pytest.raises(ValueError, match="must not set"):
        world_model_config(["tokens=t", "out=o", "+world_model.model.vocab_size=3"]).world_model.gpt(8, (2, 2))
    # Through the CLI: Hydra refuses unknown keys, the command refuses a missing output dir.
    assert main(["train", "world_model", "tokens=t", "out=o", "world_model.not_a_key=1"]) == 2
    assert main(["train", "world_model", "tokens=t"]) == 2
    assert "out" in capsys.readouterr().err
    assert main(["train", "world_model", f"tokens={tmp_path / 'none'}", f"out={tmp_path / 'o'}", "trainer.progress_bar=false"]) == 1
    assert "no token store manifest" in capsys.readouterr().err
    with pytest.raises(ValueError, match="either"):
        parse_sources("a", {"b": {"tokens": "b"}})
    with pytest.raises(ValueError, match="sources.b.tokens is not set"):
        parse_sources(None, {"b": {"tokens": None, "weight": 1.0}})
    with pytest.raises(ValueError, match="no token stores"):
        parse_sources(None, {})
    assert parse_sources(["x/tok", "y/tok"], None) == [TokenSource("tok", "x/tok"), TokenSource("tok_2", "y/tok")]


def test_sources_must_share_a_tokenizer_and_a_frame_rate(tmp_path):
    a = dash_store(tmp_path / "a", n_clips=3, n_frames=6, fps=5.0)
    other = write_token_store(tmp_path / "other", [dash_clip(6, 0, 1)] * 3, fps=5.0, tokenizer_sha="b" * 64)
    with pytest.raises(ValueError, match="different tokenizers"):
        train_world_model(world_model_config([f"tokens=[{a},{other}]", f"out={tmp_path / 'o1'}"]))
    odd = write_token_store(tmp_path / "odd", [dash_clip(6, 0, 1)] * 3, fps=7.0)
    with pytest.raises(ValueError, match="7 fps, not a multiple of the model's 5 fps"):
        train_world_model(world_model_config([f"tokens=[{a},{odd}]", f"out={tmp_path / 'o2'}"]))
    with pytest.raises(ValueError, match="different frame rates"):
        train_world_model(world_model_config([f"tokens=[{a},{odd}]", f"out={tmp_path / 'o3'}", "world_model.fps=null"]))
    short = write_token_store(tmp_path / "short", [dash_clip(3, 0, 1)], fps=5.0)
    with pytest.raises(ValueError, match="no clip of 4 frames"):
        train_world_model(world_model_config([f"tokens={short}", f"out={tmp_path / 'o4'}"]))


def test_resuming_another_model_in_the_same_out_dir_is_refused(tmp_path):
    tokens = dash_store(tmp_path / "t", n_clips=3, n_frames=6, fps=5.0)
    args = [f"tokens={tokens}", f"out={tmp_path / 'run'}", "world_model.max_steps=1"]
    train_world_model(world_model_config(args))
    with pytest.raises(ValueError, match="holds a run of another model"):
        train_world_model(world_model_config([*args, "world_model.model.n_layer=1"]))


BENCH = ["image_height=16", "image_width=32", "+world_model.model.n_layer=1", "+world_model.model.n_embd=32", "+world_model.model.n_head=2",
         "train_batch=2", "train_steps=1", "warmup_steps=0", "decode_tokens=4", "tokenizer_batch=2", "tokenizer_steps=1",
         "tokenizer.model.base_channels=4"]


def test_bench_prints_the_speed_keys_and_the_same_run_ratio(capsys):
    pytest.importorskip("transformers", reason="the Hugging Face baseline needs `transformers` (pyproject's bench extra)")
    result = run_subcommand("bench", "world_model", BENCH)
    printed = json.loads(capsys.readouterr().out)
    assert printed == result
    for key in ("train_tokens_per_s", "hf_gpt2_train_tokens_per_s", "train_ratio_vs_hf", "decode_cached_tokens_per_s",
                "decode_uncached_tokens_per_s", "tokenizer_images_per_s", "train_tokens_per_s_fp32", "train_tokens_per_s_bf16"):
        assert result[key] > 0, key
    assert result["train_ratio_vs_hf"] == pytest.approx(result["train_tokens_per_s"] / result["hf_gpt2_train_tokens_per_s"], rel=1e-3)
    assert result["hf_gpt2_train_tokens_per_s"] == result["hf_gpt2_train_tokens_per_s_fp32"]  # GPT-2 as shipped
    for p in ("fp32", "bf16"):  # and at equal precision
        assert result[f"train_ratio_vs_hf_{p}"] == pytest.approx(result[f"train_tokens_per_s_{p}"] / result[f"hf_gpt2_train_tokens_per_s_{p}"], rel=1e-3)
    assert result["train_tokens_per_s"] == max(result["train_tokens_per_s_fp32"], result["train_tokens_per_s_bf16"])
    assert result["gpt"]["sequence_tokens"] == 4 * 2 * 4 and result["mfu"] is None  # CPU: no MFU


def test_bench_without_transformers_reports_null_with_a_reason(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now raises ImportError
    result = run_subcommand("bench", "world_model", [*BENCH, "precisions=[fp32]"])
    capsys.readouterr()
    assert result["hf_gpt2_train_tokens_per_s"] is None and result["train_ratio_vs_hf"] is None
    assert "transformers is not installed" in result["hf_note"]
    assert result["train_tokens_per_s"] > 0 and result["decode_cached_tokens_per_s"] > 0
    # Imagined frames: speculative and token-by-token decoding give the same greedy tokens.
    assert result["imagine_identical"] is True and result["imagine_weights"] == "random"
    assert result["imagine_frame_s"] > 0 and result["model_calls_per_frame"] <= result["model_calls_per_frame_plain"]
    assert result["imagine_static_identical"] is True and result["imagine_frame_s_static"] > 0  # fixed-shape steps
    assert result["imagine_static_compile"] == "none"  # compile=auto: not on CPU
    with pytest.raises(ValueError, match="precisions"):
        run_subcommand("bench", "world_model", [*BENCH, "precisions=[fp16]"])


def test_bench_flop_count_and_compile_switch():
    import torch

    from world_model.bench import flops_per_token
    from world_model.gpt.model import GPT

    bench = BenchConfig.from_config(compose("bench/world_model", ["experiment=S", "image_height=288", "image_width=512"]))
    g = bench.gpt
    # Analytic count for the S shape: per layer qkv + proj + 2 MLP matrices (12 C^2, no biases),
    # plus the tied (V x C) output head; the spatial and temporal lookups do no products.
    matmul_params = g.n_layer * 12 * g.n_embd**2 + g.vocab_size * g.n_embd
    expected = 6 * matmul_params + 12 * g.n_layer * g.n_embd * g.max_tokens
    num_params = g.n_layer * 12 * g.n_embd**2 + (g.vocab_size + g.tokens_per_frame + g.max_frames) * g.n_embd
    assert flops_per_token(g, num_params) == expected
    tiny = BenchConfig.from_config(compose("bench/world_model", BENCH)).gpt
    assert flops_per_token(tiny, GPT(tiny).num_params()) > 6 * tiny.vocab_size * tiny.n_embd  # the head is counted
    # compile=auto follows the profile (S: compiled) on CUDA only; the tiny profile never compiles.
    assert bench.compile_on(torch.device("cuda")) and not bench.compile_on(torch.device("cpu"))
    assert not BenchConfig.from_config(compose("bench/world_model", BENCH)).compile_on(torch.device("cuda"))
    forced = BenchConfig.from_config(compose("bench/world_model", [*BENCH, "compile=true"]))
    assert forced.compile_on(torch.device("cpu"))
    with pytest.raises(ValueError, match="compile must be"):
        BenchConfig.from_config(compose("bench/world_model", [*BENCH, "compile=sometimes"]))


def test_bench_yaml_keys_are_the_config_fields():
    """Every key of configs/bench/world_model.yaml's own section is a BenchConfig field and back."""
    from omegaconf import OmegaConf

    from configs import CONFIG_DIR
    from world_model.bench import BENCH_KEYS

    own = set(OmegaConf.load(CONFIG_DIR / "bench" / "world_model.yaml")) - {"defaults"}
    assert own == set(BENCH_KEYS)


def test_gpu_check_script_parses_and_its_bench_overrides_compose():
    """benchmarks/gpu_check.sh runs only on a GPU machine; here: bash accepts it and the bench
    command it builds composes into a valid S benchmark."""
    import re
    import shlex
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    words = shlex.split(re.search(r"^bench=\((.*)\)$", script.read_text(), re.M).group(1))
    assert words[:2] == ["bench", "world_model"]
    overrides = [w.replace("$EXPERIMENT", "S") for w in words[2:]]
    bench = BenchConfig.from_config(compose("bench/world_model", overrides))
    assert (bench.gpt.n_layer, bench.gpt.max_tokens, bench.precisions) == (24, 8 * 18 * 32, ("bf16",))
    # The imagined-frame steps: decoding only (no training), fixed-shape steps compiled.
    text = script.read_text().replace("\\\n", " ")
    words = shlex.split(re.search(r"^imagine=\((.*?)\)$", text, re.M).group(1))
    imagine = BenchConfig.from_config(compose("bench/world_model", [w.replace("$EXPERIMENT", "S") for w in words[2:]] + ["imagine_batch=32"]))
    assert (imagine.train_steps, imagine.compile, imagine.gpt.tokens_per_frame, imagine.imagine_batch) == (0, "true", 576, 32)
    assert re.search(r"^STEPS=", text, re.M) and "imagine_S_b32" in text


def test_token_sources_subsample_faster_clips_to_the_model_rate(tmp_path):
    from world_model.token_sources import source_windows
    from world_model.tokens.reader import TokenStore

    clip = np.arange(12, dtype=np.uint16)[:, None, None] * np.ones((1, 2), np.uint16)  # token value = frame index
    store = TokenStore(write_token_store(tmp_path / "s", [clip], fps=10.0, vocab=16))
    windows = source_windows(TokenSource("s", str(store.root)), store, n_frames=4, fps=5.0, val_clips=0, codebook_size=16)
    firsts = sorted(windows.train[i]["tokens"][:, 0, 0].tolist() for i in range(len(windows.train)))
    # Two interleaved 5 Hz clips (even and odd frames), each cut into windows of 4 frames.
    assert firsts == [[0, 2, 4, 6], [1, 3, 5, 7], [2, 4, 6, 8], [3, 5, 7, 9], [4, 6, 8, 10], [5, 7, 9, 11]]
    assert len(windows.val) == 0 and windows.frame_step == 2


def test_wandb_logging_is_offline_or_disabled_never_online(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "online")  # the config wins over the environment
    tokens = dash_store(tmp_path / "t", n_clips=3, n_frames=6, fps=5.0)
    summary = train_world_model(world_model_config([
        f"tokens={tokens}", f"out={tmp_path / 'run'}", "world_model.max_steps=1", "trainer.loggers=[csv,wandb]", "trainer.wandb_mode=disabled",
    ])).summary
    assert summary["steps"] == 1 and next((tmp_path / "run" / "logs").rglob("metrics.csv")).is_file()
    assert os.environ["WANDB_MODE"] == "disabled"


def test_training_honours_the_trainer_group(tmp_path, monkeypatch):
    monkeypatch.setattr("foresight.training.precision.cpu_has_native_bf16", lambda: False)  # an AVX2-only CPU
    tokens = dash_store(tmp_path / "t", n_clips=3, n_frames=6, fps=5.0)
    probe = TrainerProbe()
    summary = train_world_model(world_model_config([f"tokens={tokens}", f"out={tmp_path / 'run'}", "world_model.max_steps=2",
                                                    "trainer.strategy=ddp", "trainer.devices=1"]), [probe]).summary
    assert probe.seen == {"strategy": "DDPStrategy", "devices": 1, "world_size": 1, "precision": "32-true"} and summary["precision"] == "32-true"


def test_bench_with_no_training_steps_times_decoding_only(capsys):
    result = run_subcommand("bench", "world_model", [*BENCH, "train_steps=0", "precisions=[fp32]"])
    capsys.readouterr()
    assert result["train_tokens_per_s"] is None and result["train_precision"] is None and result["mfu"] is None
    assert result["hf_note"] == "training not timed (train_steps=0)" and result["hf_gpt2_train_tokens_per_s"] is None
    assert result["decode_cached_tokens_per_s"] > 0 and result["imagine_frame_s"] > 0 and result["imagine_identical"] is True
    with pytest.raises(ValueError, match="train_steps must be >= 0"):
        run_subcommand("bench", "world_model", [*BENCH, "train_steps=-1"])


def test_bench_reports_a_failing_fixed_shape_path_and_keeps_the_others(monkeypatch, capsys):
    import world_model.bench as bench

    class Broken:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("compiler says no")

    monkeypatch.setattr(bench, "StaticDecoder", Broken)
    result = run_subcommand("bench", "world_model", [*BENCH, "train_steps=0", "precisions=[fp32]", "imagine_windows=2"])
    capsys.readouterr()
    assert result["imagine_static_error"] == "RuntimeError: compiler says no"
    assert result["imagine_frame_s_static"] is None and result["imagine_static_identical"] is None
    assert result["imagine_frame_s"] > 0 and result["imagine_identical"] is True
