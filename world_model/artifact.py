"""The trained world model on disk, for later stages: `world_model.safetensors` + `world_model.json`.

The JSON holds the GPT architecture, the frame rate the model was trained at and the identity of
the tokenizer whose tokens it predicts, so evaluation and the planner can refuse a mismatched
tokenizer. `load_world_model` also opens a training checkpoint (`checkpoints/last.ckpt`, loaded
with weights_only=True), whose "foresight_world_model" entry carries the same facts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from data.store.weights_file import load_state_strict, read_meta, read_state, write_weights
from world_model.gpt.config import GPTConfig
from world_model.gpt.lightning_module import load_gpt_from_checkpoint
from world_model.gpt.model import GPT

FORMAT = "foresight-world-model"
FORMAT_VERSION = 1
WEIGHTS_NAME = "world_model.safetensors"
CHECKPOINT_META_KEY = "foresight_world_model"


@dataclass(frozen=True)
class WorldModelMeta:
    """fps: frames per second of the model's frame sequence; tokenizer: identity of the tokenizer
    (architecture, config, weights_sha256) whose codes the model predicts; extra: JSON-able facts
    (training steps, sources and their realised mix, the training config)."""

    fps: float | None
    tokenizer: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fps is not None and not float(self.fps) > 0:
            raise ValueError(f"WorldModelMeta.fps must be > 0 or None, got {self.fps}")

    @property
    def tokenizer_sha256(self) -> str | None:
        return self.tokenizer.get("weights_sha256")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WorldModelMeta":
        return cls(fps=d.get("fps"), tokenizer=dict(d.get("tokenizer") or {}), extra=dict(d.get("extra") or {}))


@dataclass(frozen=True)
class LoadedWorldModel:
    """A GPT in eval mode with its metadata and the file it came from."""

    model: GPT
    meta: WorldModelMeta
    path: Path


def _weights_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix in (".safetensors", ".json") else path / WEIGHTS_NAME


def export_world_model(model: GPT, path: str | Path, meta: WorldModelMeta) -> Path:
    """Write `path` (a directory -> world_model.safetensors, or a .safetensors file) and its .json."""
    weights = _weights_path(path).with_suffix(".safetensors")
    # A tied head shares the embedding's storage: store it once (safetensors refuses shared tensors).
    state = {k: v for k, v in model.state_dict().items() if not (model.config.tie_weights and k == "lm_head.weight")}
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "gpt": asdict(model.config), "num_params": model.num_params(), **meta.to_dict()}
    return write_weights(weights, weights.with_suffix(".json"), state, FORMAT, doc)


def load_world_model(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedWorldModel:
    """Open an export (directory, .safetensors or .json) or a Lightning training checkpoint (.ckpt)."""
    path = Path(path)
    if path.suffix == ".ckpt":
        if not path.is_file():
            raise FileNotFoundError(f"world model checkpoint not found: {path}")
        model = load_gpt_from_checkpoint(path, map_location)
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        meta = WorldModelMeta.from_dict(checkpoint.get(CHECKPOINT_META_KEY) or {"fps": None, "tokenizer": {}})
        return LoadedWorldModel(model, meta, path.resolve())
    weights = _weights_path(path).with_suffix(".safetensors")
    config = weights.with_suffix(".json")
    doc = read_meta(weights, config, FORMAT, FORMAT_VERSION, "world model", ", or a .ckpt")
    model = GPT(GPTConfig.from_dict(doc["gpt"]))
    state = read_state(weights, config, doc, device=str(map_location))
    if model.config.tie_weights:
        state["lm_head.weight"] = state["token_emb.weight"]
    load_state_strict(model, state, weights, config)
    return LoadedWorldModel(model.to(map_location).eval(), WorldModelMeta.from_dict(doc), weights.resolve())
