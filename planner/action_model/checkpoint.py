"""Action-model checkpoints without pickle: `vam.safetensors` (weights) + `vam.json` (configs).

The JSON holds the world-model and action-model configs (so the normalisation constants travel
with the weights), the SHA-256 of the weights, the identity of the tokenizer the world model was
trained with (when known) and free-form `extra` facts. The weights hold the world model (absent in
no-video mode; the tied output head is stored once) under "world_model." and the expert under
"expert.". Only local paths are accepted.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from data.store.weights_file import read_meta, read_state, write_weights
from planner.action_model.config import ActionModelConfig
from planner.action_model.model import VideoActionModel
from world_model.gpt.config import GPTConfig

FORMAT = "foresight-vam"
FORMAT_VERSION = 1
WEIGHTS_NAME = "vam.safetensors"


def _paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, config) for a .safetensors file, its .json, or a directory holding vam.*."""
    if "://" in str(path):
        raise ValueError(f"action-model checkpoints load from local paths only, got {path!r}")
    path = Path(path)
    if path.suffix not in (".safetensors", ".json"):
        path = path / WEIGHTS_NAME
    weights = path.with_suffix(".safetensors")
    return weights, weights.with_suffix(".json")


def _tied_keys(model: VideoActionModel) -> set[str]:
    wm = model.world_model
    return {"world_model.lm_head.weight"} if wm is not None and wm.config.tie_weights else set()


def export_vam(model: VideoActionModel, path: str | Path, tokenizer: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write the weights (.safetensors, or a directory -> vam.safetensors) and the .json; returns the weights path.

    tokenizer: JSON-able identity of the image tokenizer (e.g. `LoadedTokenizer.identity`).
    """
    weights, config = _paths(path)
    tied = _tied_keys(model)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "world_model": asdict(model.world_model_config),
        "action_model": model.config.to_dict(),
        "tokenizer": tokenizer,
        "extra": extra or {},
    }
    return write_weights(weights, config, {k: v for k, v in model.state_dict().items() if k not in tied}, FORMAT, meta)


def frame_period_s(meta: dict[str, Any]) -> float:
    """Spacing [s] of the frames an exported planner observes, from its metadata (its world model's
    frame period; 0.5 s for exports that do not record it). Closed loop gives it camera frames at
    this spacing."""
    return float((meta.get("extra") or {}).get("frame_period_s", 0.5))


def vam_frame_period_s(path: str | Path) -> float:
    """`frame_period_s` of the export at `path`."""
    return frame_period_s(vam_metadata(path))


def vam_metadata(path: str | Path) -> dict[str, Any]:
    """The checked JSON of an exported action model (configs, tokenizer identity, extra)."""
    weights, config = _paths(path)
    meta = read_meta(weights, config, FORMAT, FORMAT_VERSION, "action-model")
    for key in ("world_model", "action_model", "weights_sha256"):
        if key not in meta:
            raise ValueError(f"{config}: missing {key!r}")
    return meta


def load_vam(path: str | Path, map_location: str | torch.device = "cpu") -> VideoActionModel:
    """Rebuild an exported VideoActionModel (eval mode); checks the weights' SHA-256 and every key."""
    weights, config = _paths(path)
    meta = vam_metadata(path)
    state = read_state(weights, config, meta)  # CPU tensors; the model moves afterwards
    try:
        model = VideoActionModel(GPTConfig.from_dict(dict(meta["world_model"])), ActionModelConfig.from_dict(dict(meta["action_model"])))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{config}: invalid configs: {exc}") from exc
    result = model.load_state_dict(state, strict=False)
    missing = set(result.missing_keys) - _tied_keys(model)
    if missing or result.unexpected_keys:
        raise ValueError(f"{weights} does not fit the architecture in {config}: missing {sorted(missing)}, unexpected {sorted(result.unexpected_keys)}")
    return model.to(map_location).eval()
