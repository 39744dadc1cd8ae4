"""Action-model checkpoints without pickle: `vam.safetensors` (weights) + `vam.json` (configs).

The JSON holds the world-model and action-model configs (so the normalisation constants travel
with the weights), the SHA-256 of the weights, the identity of the tokenizer the world model was
trained with (when known) and `extra` facts: the frame period the planner observes at, its
inference settings, where its tokenizer is (`tokenizer_path`, a copy beside the weights), training
facts. The weights hold the world model (absent in no-video mode; the tied output head is stored
once) under "world_model." and the expert under "expert.". Only local paths are accepted.

`load_vam_export` reads all of it back (model, tokenizer, settings); `planner.vam.VAMPlanner.from_checkpoint`
turns that into the closed-loop planner.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from data.store.weights_file import WeightsPaths, read_meta, read_state, write_weights
from planner.action_model.config import ActionModelConfig
from planner.action_model.model import VideoActionModel
from planner.inference import InferenceSettings
from world_model.gpt.config import GPTConfig

FORMAT = "foresight-vam"
FORMAT_VERSION = 1
WEIGHTS_NAME = "vam.safetensors"


def _paths(path: str | Path) -> tuple[Path, Path]:
    files = WeightsPaths.at(path, WEIGHTS_NAME)
    return files.weights, files.config


def _tied_keys(model: VideoActionModel) -> set[str]:
    wm = model.world_model
    return {"world_model.lm_head.weight"} if wm is not None and wm.config.tie_weights else set()


def export_vam(
    model: VideoActionModel,
    path: str | Path,
    frame_period_s: float,
    inference: InferenceSettings,
    tokenizer: dict[str, Any] | None = None,
    tokenizer_path: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the weights (.safetensors, or a directory -> vam.safetensors) and the .json; returns the weights path.

    frame_period_s: [s] spacing of the frames the planner observes; inference: how it plans;
    tokenizer: JSON-able identity of the image tokenizer (e.g. `LoadedTokenizer.identity`);
    tokenizer_path: where that tokenizer is (relative to the export's directory, or absolute);
    extra: more JSON-able facts (training steps, validation metrics, the profile).
    """
    weights, config = _paths(path)
    tied = _tied_keys(model)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "world_model": asdict(model.world_model_config),
        "action_model": model.config.to_dict(),
        "tokenizer": tokenizer,
        "extra": {**(extra or {}), "frame_period_s": float(frame_period_s), "inference": asdict(inference), "tokenizer_path": tokenizer_path},
    }
    return write_weights(weights, config, {k: v for k, v in model.state_dict().items() if k not in tied}, FORMAT, meta)


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


@dataclass(frozen=True)
class VamExport:
    """An exported planner read back: the model (eval mode), its image tokenizer (None for a
    no-video model), the checked JSON, and the settings the export recorded."""

    path: Path
    model: VideoActionModel
    tokenizer: Any  # world_model.tokenizer ImageTokenizer, or None
    meta: dict[str, Any]

    @property
    def frame_period_s(self) -> float:
        """[s] spacing of the frames the planner observes (its world model's frame period)."""
        return float(self.meta["extra"]["frame_period_s"])

    @property
    def inference(self) -> InferenceSettings:
        """The inference settings it was exported with (`planner.inference` of its training)."""
        return InferenceSettings(**self.meta["extra"]["inference"])


def export_tokenizer_path(path: str | Path) -> Path | None:
    """The tokenizer an export names (`extra.tokenizer_path`, relative to the export's directory or
    absolute), or None when it names none."""
    recorded = (vam_metadata(path).get("extra") or {}).get("tokenizer_path")
    if not recorded:
        return None
    tokenizer = Path(recorded)
    return tokenizer if tokenizer.is_absolute() else _paths(path)[0].parent / tokenizer


def load_vam_export(path: str | Path, tokenizer: str | Path | None = None) -> VamExport:
    """Read an export (see the module docstring). The tokenizer is `tokenizer` when given, else the
    one the export names; it must match the weights SHA-256 the export recorded."""
    meta = vam_metadata(path)
    extra = meta.get("extra") or {}
    missing = [key for key in ("frame_period_s", "inference") if extra.get(key) is None]
    if missing:
        raise ValueError(f"{_paths(path)[1]}: the export records no {missing} (made by an older version; export it again)")
    model = load_vam(path)
    loaded_tokenizer = None
    if model.config.uses_video:
        tokenizer_path = Path(tokenizer) if tokenizer else export_tokenizer_path(path)
        if tokenizer_path is None:
            raise ValueError(f"{path}: the action model uses video but names no tokenizer; pass tokenizer=PATH")
        from world_model.tokenizer import load_image_tokenizer

        loaded = load_image_tokenizer(tokenizer_path)
        recorded = (meta.get("tokenizer") or {}).get("weights_sha256")
        if recorded is not None and recorded != loaded.identity.get("weights_sha256"):
            raise ValueError(f"tokenizer {tokenizer_path} is not the one {path} was trained with (weights SHA-256 differs)")
        loaded_tokenizer = loaded.model
    return VamExport(Path(path), model, loaded_tokenizer, meta)
