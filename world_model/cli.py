"""Entry points of the world-model subcommands; each takes the composed Hydra config.

    foresight train tokenizer   clips=DIR out=DIR [experiment=tiny]       -> run_train_tokenizer
    foresight data tokenize     clips=DIR tokenizer=DIR out=DIR           -> run_tokenize
    foresight train world_model tokens=DIR[,DIR2] out=DIR [experiment=..]  -> run_train_world_model
    foresight eval world_model  checkpoint=DIR tokenizer=DIR clips=DIR out=DIR -> run_eval_world_model
    foresight bench world_model [experiment=..]                           -> run_bench
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from world_model.train_config import plain


def run_train_tokenizer(cfg: Any) -> dict[str, Any]:
    """Train the image tokenizer with the `tokenizer` profile; `trainer.*` picks devices and precision."""
    from world_model.tokenizer.train import run_train

    import torch

    from world_model.train_config import TrainerSettings

    d = plain(cfg)
    trainer = TrainerSettings.from_mapping(d["trainer"])
    if trainer.threads is not None:
        torch.set_num_threads(trainer.threads)
    cuda = torch.cuda.is_available() and trainer.accelerator in ("auto", "gpu", "cuda")
    return run_train({
        **d["tokenizer"], "clips": d["clips"], "out": d["out"],
        "accelerator": trainer.accelerator, "devices": trainer.devices, "precision": trainer.resolved_precision(cuda),
    })


def run_tokenize(cfg: Any):
    """Encode a clip store into a token store (resumable)."""
    from world_model.tokens.tokenize import TokenizeConfig, run_tokenize as tokenize

    d = plain(cfg)
    return tokenize({f.name: d[f.name] for f in fields(TokenizeConfig) if f.name in d})


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

    from world_model.bench import BenchConfig, run_bench as bench

    result = bench(BenchConfig.from_config(cfg))
    print(json.dumps(result, indent=1))
    return result
