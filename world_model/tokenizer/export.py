"""Tokenizer weights on disk without pickle: `<name>.safetensors` + `<name>.json` (config) side by side.

`load_image_tokenizer` also opens LlamaGen-format `.pt` checkpoints, so the token store and the
world model can take either kind of tokenizer from one path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save

from data.store.manifest import atomic_write_bytes, atomic_write_text, sha256_file
from world_model.tokenizer.encoding import ImageTokenizer
from world_model.tokenizer.llamagen import LlamaGenVQConfig, load_llamagen_vq
from world_model.tokenizer.model import ConvTokenizer, TokenizerConfig

FORMAT = "foresight-tokenizer"
FORMAT_VERSION = 1
WEIGHTS_NAME = "tokenizer.safetensors"


def _paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, config) for a .safetensors file, its .json, or a directory (any other path) holding tokenizer.*."""
    path = Path(path)
    if path.suffix not in (".safetensors", ".json"):
        path = path / WEIGHTS_NAME
    weights = path.with_suffix(".safetensors")
    return weights, weights.with_suffix(".json")


def export_tokenizer(model: ConvTokenizer, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write `path` (.safetensors, or a directory -> tokenizer.safetensors) and its .json; returns the weights path.

    extra: JSON-able facts to keep with the weights (training steps, eval numbers, ...).
    """
    weights, config = _paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(weights, save(state, metadata={"format": FORMAT}))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **model.describe(),
        "codebook_size": model.codebook_size,
        "downsample_factor": model.downsample_factor,
        "weights_file": weights.name,
        "weights_sha256": sha256_file(weights),
        "extra": extra or {},
    }
    atomic_write_text(config, json.dumps(meta, indent=1))
    return weights


def load_tokenizer(path: str | Path) -> ConvTokenizer:
    """Rebuild an exported ConvTokenizer (eval mode) from its .safetensors + .json; checks the weights' SHA-256."""
    weights, config = _paths(path)
    for p in (weights, config):
        if not p.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {p} (need both {weights.name} and {config.name})")
    try:
        meta = json.loads(config.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"corrupt tokenizer config {config}: {exc}") from exc
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{config}: not a {FORMAT} v{FORMAT_VERSION} file (format={meta.get('format')}, version={meta.get('format_version')})")
    if meta.get("weights_sha256") != sha256_file(weights):
        raise ValueError(f"{weights} does not match the SHA-256 recorded in {config} (files from different exports?)")
    model = ConvTokenizer(TokenizerConfig.from_dict(meta["config"]))
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{weights} does not fit the architecture in {config}: {exc}") from exc
    return model.eval()


@dataclass(frozen=True)
class LoadedTokenizer:
    """A tokenizer ready for inference; identity = describe() + the weights' SHA-256 (not their path, so
    a moved file keeps its identity)."""

    model: ImageTokenizer
    identity: dict[str, Any]
    weights_path: Path


def load_image_tokenizer(path: str | Path, llamagen_config: LlamaGenVQConfig | None = None) -> LoadedTokenizer:
    """Open a Foresight export (.safetensors/.json/directory) or a LlamaGen checkpoint (.pt/.pth;
    its architecture is inferred from the tensor shapes unless `llamagen_config` is given)."""
    path = Path(path)
    if path.suffix in (".pt", ".pth"):
        model: Any = load_llamagen_vq(path, llamagen_config)
        weights = path
    else:
        model = load_tokenizer(path)
        weights = _paths(path)[0]
    identity = {**model.describe(), "weights_sha256": sha256_file(weights)}
    return LoadedTokenizer(model, identity, weights.resolve())
