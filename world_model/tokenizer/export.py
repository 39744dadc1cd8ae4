"""Tokenizer weights on disk without pickle: `<name>.safetensors` + `<name>.json` (config) side by side.

`load_image_tokenizer` also opens LlamaGen-format `.pt` checkpoints, so the token store and the
world model can take either kind of tokenizer from one path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.store.manifest import sha256_file
from data.store.weights_file import WeightsPaths, load_state_strict, read_meta, read_state, write_weights
from world_model.tokenizer.encoding import ImageTokenizer
from world_model.tokenizer.llamagen import LlamaGenVQConfig, load_llamagen_vq
from world_model.tokenizer.model import ConvTokenizer, TokenizerConfig

FORMAT = "foresight-tokenizer"
FORMAT_VERSION = 1
WEIGHTS_NAME = "tokenizer.safetensors"


def export_tokenizer(model: ConvTokenizer, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write `path` (.safetensors, or a directory -> tokenizer.safetensors) and its .json; returns the weights path.

    extra: JSON-able facts to keep with the weights (training steps, eval numbers, ...).
    """
    files = WeightsPaths.at(path, WEIGHTS_NAME)
    weights, config = files.weights, files.config
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **model.describe(),
        "codebook_size": model.codebook_size,
        "downsample_factor": model.downsample_factor,
        "extra": extra or {},
    }
    return write_weights(weights, config, model.state_dict(), FORMAT, meta)


def load_tokenizer(path: str | Path) -> ConvTokenizer:
    """Rebuild an exported ConvTokenizer (eval mode) from its .safetensors + .json; checks the weights' SHA-256."""
    files = WeightsPaths.at(path, WEIGHTS_NAME)
    weights, config = files.weights, files.config
    meta = read_meta(weights, config, FORMAT, FORMAT_VERSION, "tokenizer")
    try:
        architecture = TokenizerConfig.from_dict(meta["config"])
    except KeyError:
        raise ValueError(f"{config}: no 'config' section (the tokenizer's architecture)") from None
    except (TypeError, ValueError) as exc:  # a hand-edited JSON: name the file (and, from the config's checks, the key)
        raise ValueError(f"{config}: {exc}") from exc
    state = read_state(weights, config, meta)
    model = ConvTokenizer(architecture)
    load_state_strict(model, state, weights, config)
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
        weights = WeightsPaths.at(path, WEIGHTS_NAME).weights
    identity = {**model.describe(), "weights_sha256": sha256_file(weights)}
    return LoadedTokenizer(model, identity, weights.resolve())
