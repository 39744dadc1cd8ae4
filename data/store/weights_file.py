"""Exported weights as a pair of files: <name>.safetensors (tensors) + <name>.json (format,
version, configs, the weights' SHA-256), both written atomically. Every exported model (tokenizer,
world model, planner, ego MLP) uses it; loading checks the files exist, the JSON parses, the format
and version match and the weights are the ones the JSON was written with. Nothing is unpickled."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file, save

from data.store.manifest import atomic_write_bytes, atomic_write_text, read_json, sha256_file

MAX_DESCRIBED_JSON_BYTES = 1 << 20  # describe_dir reads the format of exports' JSON, not of big data tables


@dataclass(frozen=True)
class WeightsPaths:
    """The two files of an export: weights (.safetensors) and config (.json)."""

    weights: Path
    config: Path

    @classmethod
    def at(cls, path: str | Path, weights_name: str) -> "WeightsPaths":
        """The files for a .safetensors path, its .json, or a directory holding `weights_name` (e.g.
        "vam.safetensors") and its .json. Only local paths: a URL is refused (nothing is downloaded)."""
        if "://" in str(path):
            raise ValueError(f"exports load from local paths only, got {path!r}")
        path = Path(path)
        if path.suffix not in (".safetensors", ".json"):
            path = path / weights_name
        weights = path.with_suffix(".safetensors")
        return cls(weights, weights.with_suffix(".json"))


def write_weights(weights: Path, config: Path, state: Mapping[str, torch.Tensor], fmt: str, meta: Mapping[str, Any]) -> Path:
    """Write `state` to `weights` and `meta` (with weights_file, weights_sha256 added) to `config`."""
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write_bytes(weights, save(tensors, metadata={"format": fmt}))
    doc = {**meta, "weights_file": weights.name, "weights_sha256": sha256_file(weights)}
    atomic_write_text(config, json.dumps(doc, indent=1))
    return weights


def read_meta(weights: Path, config: Path, fmt: str, version: int, what: str, alternative: str = "") -> dict[str, Any]:
    """The JSON of an export, checked: both files exist, it parses, format and version match.
    `what` names the artifact in errors ("tokenizer"); `alternative` adds to the missing-file message."""
    for p in (weights, config):
        if not p.is_file():
            raise FileNotFoundError(f"{what} file not found: {p} (need both {weights.name} and {config.name}{alternative}); {describe_dir(p.parent)}")
    meta = read_json(config, f"{what} config")
    if meta.get("format") != fmt or meta.get("format_version") != version:
        raise ValueError(f"{config}: not a {fmt} v{version} file (format={meta.get('format')}, version={meta.get('format_version')})")
    return meta


def describe_dir(directory: Path, max_names: int = 10) -> str:
    """What `directory` holds, for an error about a file missing there: the exports in it (by the
    `format` of their JSON, e.g. "a foresight-world-model export (world_model.json)"), else its
    first entries, so a path to the wrong kind of output says what it is."""
    if not directory.is_dir():
        return f"{directory} does not exist" if not directory.exists() else f"{directory} is not a directory"
    exports = []
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_text()) if path.stat().st_size <= MAX_DESCRIBED_JSON_BYTES else None
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("format"), str):
            exports.append(f"a {doc['format']} export ({path.name})")
    if exports:
        return f"{directory} holds {', '.join(exports)}"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    if not names:
        return f"{directory} is empty"
    return f"{directory} holds {', '.join(names[:max_names])}{' ...' if len(names) > max_names else ''}"


def read_state(weights: Path, config: Path, meta: Mapping[str, Any], device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of an export whose SHA-256 matches the one its JSON recorded."""
    if meta.get("weights_sha256") != sha256_file(weights):
        raise ValueError(f"{weights} does not match the SHA-256 recorded in {config} (files from different exports?)")
    return load_file(str(weights), device=device)


def load_state_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], weights: Path, config: Path) -> None:
    """model.load_state_dict(state, strict=True) with an error that names the files."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{weights} does not fit the architecture in {config}: {exc}") from exc
