"""Entry points of the world-model subcommands; each takes the composed Hydra config.

    foresight train tokenizer   clips=DIR out=DIR [experiment=tiny]       -> run_train_tokenizer
    foresight data tokenize     clips=DIR tokenizer=DIR out=DIR           -> run_tokenize
    foresight train world_model tokens=DIR[,DIR2] out=DIR [experiment=..]  -> run_train_world_model
    foresight eval world_model  checkpoint=DIR tokenizer=DIR clips=DIR out=DIR -> run_eval_world_model
    foresight bench world_model [experiment=..]                           -> run_bench
"""

from __future__ import annotations

from typing import Any


def run_train_tokenizer(cfg: Any) -> dict[str, Any]:
    """Train the image tokenizer with the `tokenizer` profile; `trainer.*` picks devices and precision."""
    from world_model.tokenizer.train import run_train

    return run_train(cfg)


def run_tokenize(cfg: Any):
    """Encode a clip store into a token store (resumable)."""
    from world_model.tokens.tokenize import run_tokenize as tokenize

    return tokenize(cfg)


def run_train_world_model(cfg: Any) -> dict[str, Any]:
    """Train the GPT world model; returns train_summary.json's content (rank 0)."""
    from world_model.train import train_world_model
    from world_model.train_config import TrainWorldModelConfig

    return train_world_model(TrainWorldModelConfig.from_config(cfg)).summary


def run_eval_world_model(cfg: Any) -> dict[str, Any]:
    """Evaluate a world model on held-out clips; returns metrics.json's content."""
    from world_model.evaluate import EvalWorldModelConfig, run_eval

    return run_eval(EvalWorldModelConfig.from_mapping(cfg))


def run_bench(cfg: Any) -> dict[str, Any]:
    """Speed of the world model and tokenizer vs Hugging Face GPT-2; prints one JSON object."""
    import json

    from world_model.bench import BenchConfig
    from world_model.bench import run_bench as bench

    result = bench(BenchConfig.from_config(cfg))
    print(json.dumps(result, indent=1))
    return result
