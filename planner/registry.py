"""Planners by name, for the CLI and the evaluation workers (which rebuild them in each process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from planner.action_model.checkpoint import frame_period_s as checkpoint_frame_period_s
from planner.contract import Planner


def _constant_velocity(cfg: Mapping[str, Any]) -> Planner:
    from planner.baselines.constant_velocity import ConstantVelocityPlanner

    return ConstantVelocityPlanner(num_waypoints=int(cfg.get("num_waypoints", 6)), dt_s=float(cfg.get("plan_dt_s", 0.5)))


def _expert(cfg: Mapping[str, Any]) -> Planner:
    from planner.baselines.expert import ExpertPlanner

    return ExpertPlanner()


def _log_replay(cfg: Mapping[str, Any]) -> Planner:
    from planner.baselines.log_replay import LogReplayPlanner

    return LogReplayPlanner(num_waypoints=int(cfg.get("num_waypoints", 6)), dt_s=float(cfg.get("plan_dt_s", 0.5)))


def _checkpoint(cfg: Mapping[str, Any], name: str) -> str:
    checkpoint = cfg.get("checkpoint")
    if not checkpoint:
        raise ValueError(f"planner {name!r} needs checkpoint=<exported planner directory> (e.g. OUT/vam of `foresight train planner`)")
    return str(checkpoint)


def vam_tokenizer_path(checkpoint: str | Path) -> Path | None:
    """The tokenizer an exported action model names in its JSON (`extra.tokenizer_path`, relative to
    the checkpoint's directory or absolute), or None when it names none."""
    from planner.action_model.checkpoint import _paths, vam_metadata

    recorded = (vam_metadata(checkpoint).get("extra") or {}).get("tokenizer_path")
    if not recorded:
        return None
    path = Path(recorded)
    return path if path.is_absolute() else _paths(checkpoint)[0].parent / path


def load_vam_with_tokenizer(checkpoint: str | Path, tokenizer: str | Path | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(VideoActionModel, image tokenizer or None, the checkpoint's JSON) of an exported action model.

    The tokenizer is `tokenizer` when given, else the one the checkpoint names; it must match the
    weights SHA-256 the checkpoint recorded. No-video models get None.
    """
    from planner.action_model.checkpoint import load_vam, vam_metadata

    model = load_vam(checkpoint)
    meta = vam_metadata(checkpoint)
    if not model.config.uses_video:
        return model, None, meta
    path = Path(tokenizer) if tokenizer else vam_tokenizer_path(checkpoint)
    if path is None:
        raise ValueError(f"{checkpoint}: the action model uses video but names no tokenizer; pass tokenizer=PATH")
    from world_model.tokenizer import load_image_tokenizer

    loaded = load_image_tokenizer(path)
    recorded = (meta.get("tokenizer") or {}).get("weights_sha256")
    if recorded is not None and recorded != loaded.identity.get("weights_sha256"):
        raise ValueError(f"tokenizer {path} is not the one {checkpoint} was trained with (weights SHA-256 differs)")
    return model, loaded.model, meta


def with_video_mode(model: Any, video_mode: str, n_imagined_frames: int) -> Any:
    """The same weights run in another video mode (observed <-> imagine; the expert's weights have
    the same shapes in both). 'none' cannot be reached from a video model: its expert never learned
    to plan without video, so that ablation needs its own checkpoint."""
    from dataclasses import replace

    from planner.action_model.model import VideoActionModel

    if (video_mode == "none") != (not model.config.uses_video):
        raise ValueError(f"cannot run a video_mode={model.config.video_mode!r} checkpoint in video_mode={video_mode!r}; train one for it")
    config = replace(model.config, video_mode=video_mode, n_imagined_frames=int(n_imagined_frames) if video_mode == "imagine" else 0)
    switched = VideoActionModel(model.world_model_config, config)
    switched.load_state_dict(model.state_dict())
    return switched.eval()


def _vam(cfg: Mapping[str, Any]) -> Planner:
    """The flow-matching video-action model of an exported checkpoint (`checkpoint=`), with its
    tokenizer (`tokenizer=` or the one the checkpoint names), ODE steps, samples per call and their
    aggregate, and frame period from the checkpoint unless `n_steps=` / `solver=` / `n_samples=` /
    `aggregate=` are given; `video_mode=imagine n_imagined_frames=N`
    runs an observed-mode checkpoint as imagine-then-act."""
    import multiprocessing

    import torch

    from planner.vam import VAMPlanner, VAMPlannerConfig

    checkpoint = _checkpoint(cfg, "vam")
    if multiprocessing.parent_process() is not None and cfg.get("threads") is None:
        # A parallel evaluation worker: one intra-op thread each, or the workers' thread pools
        # oversubscribe the cores (a 2-core machine ran plans ~50x slower that way).
        torch.set_num_threads(1)
    elif cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    model, tokenizer, meta = load_vam_with_tokenizer(checkpoint, cfg.get("tokenizer"))
    extra = meta.get("extra") or {}
    inference = extra.get("inference") or {}
    frame_period_s = checkpoint_frame_period_s(meta)
    config = VAMPlannerConfig(
        n_steps=int(cfg.get("n_steps") or inference.get("n_steps", 10)),
        solver=str(cfg.get("solver") or inference.get("solver", "euler")),
        n_samples=int(cfg.get("n_samples") or inference.get("n_samples", 1)),
        aggregate=str(cfg.get("aggregate") or inference.get("aggregate", "first")),
        seed=int(cfg.get("seed") or 0),
        frame_period_s=frame_period_s,
        frame_tolerance_s=min(0.1, 0.4 * frame_period_s),
        device=str(cfg.get("device") or "cpu"),
    )
    mode = cfg.get("video_mode")
    if mode:
        n_imagined = int(cfg.get("n_imagined_frames") or 1) if mode == "imagine" else 0
        if (mode, n_imagined) != (model.config.video_mode, model.config.n_imagined_frames):
            model = with_video_mode(model, str(mode), n_imagined)
    return VAMPlanner(model, tokenizer, config)


def _ego_mlp(cfg: Mapping[str, Any]) -> Planner:
    """The ego-status-only MLP exported beside an action model (`checkpoint=` its directory)."""
    from planner.ego_mlp import EgoMLPPlanner, load_ego_mlp

    return EgoMLPPlanner(load_ego_mlp(_checkpoint(cfg, "ego_mlp")))


PLANNERS: dict[str, Callable[[Mapping[str, Any]], Planner]] = {
    "constant_velocity": _constant_velocity,
    "expert": _expert,
    "log_replay": _log_replay,
    "vam": _vam,
    "ego_mlp": _ego_mlp,
}


def build_planner(name: str, cfg: Mapping[str, Any] | None = None) -> Planner:
    """A fresh planner `name` configured by `cfg` (e.g. checkpoint=... for learned planners)."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; known: {', '.join(sorted(PLANNERS))}")
    return PLANNERS[name](cfg or {})
