"""`foresight eval world_model`: how well the world model predicts held-out video, against copying.

For windows of `context_frames + horizon` frames (at the model's frame rate) from held-out clip
stores, the frames are encoded with the tokenizer and
  - teacher-forced next-token cross_entropy and token_accuracy over the model's context window;
  - the next `horizon` frames are rolled out from the context (greedy, and top-k sampled with a
    seeded generator), decoded, and scored against the true frames (psnr/ssim_t{i}, also on
    changed pixels and on the road half, see `prediction_metrics`); a model with ego_motion_input
    is given the window's true ego motions (from the clip's poses; unknown without), and rolled
    out a second time without them: psnr/ssim_uncond_t{i} and the paired gain_vs_uncond_t{i}
    (+ _stderr, win_rate_vs_uncond_t{i}); for an unconditioned model psnr_uncond = psnr;
  - the same scores for copy-last-frame through the tokenizer (decode(encode(last context frame)),
    the fair baseline: same decoder), raw copy-last (the last context frame itself), and the
    tokenizer's reconstruction of the true frames (the ceiling): all in the same run, on the same
    windows; gain_vs_copy_last_t{i} pairs model and copy-last per window (mean, standard error,
    win rate);
  - the ground-plane warp (world_model.warp: the raw last context frame moved by the logged ego
    motion to each predicted frame's time, copy-last off the ground): psnr/ssim_warp_t{i} and
    gain_vs_warp_t{i} (+ _stderr, win_rate_vs_warp_t{i}), over the windows where it is defined (the
    clip has poses, intrinsics and extrinsics; warp_coverage = their fraction, num_windows_warp =
    their number); with none, the warp keys are absent;
  - videos of context + predicted frames beside the truth.
Per-source results (one per clip store) and their pooled values go to out/metrics.json.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from configs import build
from data.dataset import ClipWindowDataset, WindowSpec
from data.schema import CameraExtrinsics, CameraIntrinsics
from data.store.manifest import atomic_write_text
from data.store.reader import ClipStore
from sim_eval.render.video import side_by_side, write_video
from world_model.artifact import load_world_model
from world_model.counterfactual import COUNTERFACTUAL_PNG, MANEUVERS, counterfactual_rollouts, save_counterfactual_strip
from world_model.gpt.ego_motion import window_motions
from world_model.gpt.generate import rollout
from world_model.gpt.model import GPT
from world_model.gpt.sampling import SamplingConfig
from world_model.prediction_metrics import PredictionStats
from world_model.tokenizer.encoding import ImageTokenizer
from world_model.tokenizer.export import load_image_tokenizer
from world_model.tokenizer.metrics import psnr_db
from world_model.tokenizer.pixels import frames_to_images, images_to_frames
from world_model.tokenizer.train import evaluate_reconstruction
from world_model.warp import warp_windows
from world_model.warp_tokens import GroundTokenWarper, clip_camera, warped_frame_tokens

log = logging.getLogger(__name__)
METRICS_NAME = "metrics.json"
VIDEO_FORMATS = ("mp4", "gif")


@dataclass(frozen=True)
class EvalWorldModelConfig:
    """checkpoint: a training output dir / export (.safetensors, .json) / .ckpt; tokenizer: the
    tokenizer the model's tokens came from; clips: held-out clip store(s), comma-separated;
    context_frames: null = the model's context minus one; fps: null = the model's training rate;
    window_stride: model frames between window starts (null: context + horizon, no overlap);
    tokenizer_only_clips: further clip stores (any frame rate, e.g. real data as a cross-domain
    figure) on which only the tokenizer's reconstruction PSNR/SSIM is measured;
    max_windows: per clip store, evenly spaced; top_k / temperature: the sampled rollout;
    changed_threshold: 8-bit level change that marks a pixel as changed; videos: how many windows
    to render; counterfactual_frames: frames imagined per manoeuvre in out/counterfactual.png (an
    ego-motion-conditioned model; 0: none); device: auto | cpu | cuda[:i]; precision: auto (bf16 autocast on CUDA) | fp32 | bf16.
    configs/eval/world_model.yaml holds the defaults."""

    checkpoint: str
    tokenizer: str
    clips: Any
    out: str
    context_frames: int | None
    horizon: int
    fps: float | None
    window_stride: int | None
    max_windows: int
    batch_size: int
    top_k: int
    temperature: float
    seed: int
    changed_threshold: int
    tokenizer_only_clips: Any
    videos: int
    video_format: str
    device: str
    precision: str
    counterfactual_frames: int

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.max_windows < 1 or self.batch_size < 1 or self.videos < 0 or self.counterfactual_frames < 0:
            raise ValueError(f"eval world_model: need horizon, max_windows, batch_size >= 1 and videos, counterfactual_frames >= 0; got {self}")
        if self.context_frames is not None and self.context_frames < 1:
            raise ValueError(f"eval world_model: context_frames must be >= 1 or null, got {self.context_frames}")
        if self.video_format not in VIDEO_FORMATS:
            raise ValueError(f"eval world_model: video_format must be one of {VIDEO_FORMATS}, got {self.video_format!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"eval world_model: precision must be auto, fp32 or bf16, got {self.precision!r}")
        SamplingConfig(temperature=self.temperature, top_k=self.top_k)  # validates them

    @property
    def clip_dirs(self) -> list[str]:
        dirs = _dirs(self.clips)
        if not dirs:
            raise ValueError("eval world_model: `clips` names no clip store")
        return dirs

    @classmethod
    def from_mapping(cls, values: Any) -> "EvalWorldModelConfig":
        """Every key of configs/eval/world_model.yaml, as composed (unknown and missing keys are errors)."""
        return build(cls, values, "eval world_model")


def _dirs(value: Any) -> list[str]:
    """A directory, a comma-separated string of them, a list, or None -> a list of directories."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(d).strip() for d in items if str(d).strip()]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _check_tokenizer(model_tokenizer: dict[str, Any], identity: dict[str, Any], checkpoint: str, tokenizer: str) -> None:
    want = model_tokenizer.get("weights_sha256")
    if want and want != identity.get("weights_sha256"):
        raise ValueError(
            f"tokenizer {tokenizer} (weights {str(identity.get('weights_sha256'))[:12]}) is not the one the world model "
            f"{checkpoint} was trained on (weights {want[:12]}): pass the tokenizer its token stores were made with"
        )


def _encode(tokenizer: ImageTokenizer, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) -> token indices (N, h, w) int64 and their decoded images (N, 3, H, W); fp32."""
    indices = tokenizer.encode(images).indices
    return indices, tokenizer.decode_indices(indices)


def _windows(store: ClipStore, spec: WindowSpec, max_windows: int) -> Subset:
    ds = ClipWindowDataset(store, spec)
    if len(ds) == 0:
        raise ValueError(f"clip store {store.root} has no window of {spec.n_frames} frames at {spec.fps:g} fps")
    keep = np.unique(np.linspace(0, len(ds) - 1, min(len(ds), max_windows)).round().astype(np.int64))
    return Subset(ds, keep.tolist())


def _frame_strip(frames: list[np.ndarray], label_rgb: tuple[int, int, int]) -> np.ndarray:
    """Frames side by side with a 3-pixel bar on top: green = context, red = predicted."""
    tile = side_by_side(*frames, gap_px=2)
    bar = np.empty((3, tile.shape[1], 3), np.uint8)
    bar[:] = label_rgb
    return np.concatenate([bar, tile], axis=0)


@torch.no_grad()
def _evaluate_store(
    model: GPT, tokenizer: ImageTokenizer, store: ClipStore, c: EvalWorldModelConfig, n_context: int, fps: float,
    device: torch.device, autocast: Any, videos_left: int, video_dir: Path,
) -> tuple[PredictionStats, int, list[str]]:
    horizon = c.horizon
    spec = WindowSpec(n_frames=n_context + horizon, fps=fps, window_stride=c.window_stride or (n_context + horizon))
    windows = _windows(store, spec, c.max_windows)
    stats = PredictionStats()
    sampled = SamplingConfig(temperature=c.temperature, top_k=c.top_k)
    generator = torch.Generator(device=device).manual_seed(c.seed)
    n_eval_frames = min(model.config.max_frames, n_context + horizon)
    conditioned = model.config.ego_motion_input
    written: list[str] = []
    for batch in DataLoader(windows, batch_size=c.batch_size, shuffle=False):
        frames = batch["frames"].to(device)  # (B, T, H, W, 3) uint8
        b, t = frames.shape[:2]
        images = frames_to_images(frames.flatten(0, 1))  # (B*T, 3, H, W)
        indices, recon = _encode(tokenizer, images)
        tokens = indices.view(b, t, *indices.shape[1:])  # (B, T, h, w)
        images, recon = images.view(b, t, *images.shape[1:]), recon.view(b, t, *recon.shape[1:])
        # The true motions into every frame of the window (NaN where the clip has no poses) for a
        # conditioned model: its psnr_t{i} etc. are conditioned, psnr_uncond_t{i} from a second rollout without them.
        ego_motion = window_motions(batch["past_poses"], batch["has_poses"]).to(device) if conditioned else None  # (B, T, 3)
        # A model with prev_frame_warp also sees each frame's previous frame warped by the motion into it:
        # from the raw frames for the context and the first predicted frame, from its own predictions after.
        warped = rollout_warped = warper = None
        if conditioned and model.config.prev_frame_warp:
            cameras = _window_cameras(store, batch)
            raw = batch["frames"].numpy()  # (B, T, H, W, 3) uint8
            motions = ego_motion.cpu().numpy()
            warped = torch.from_numpy(np.stack([warped_frame_tokens(tokenizer, raw[j], motions[j], cameras[j]) for j in range(b)])).to(device)  # (B, T, h, w)
            rollout_warped = warped.clone()
            rollout_warped[:, n_context + 1 :] = -1  # the warper fills these from the predicted frames
            warper = GroundTokenWarper(tokenizer, cameras)
        with autocast:
            teacher_warped = None if warped is None else warped[:, :n_eval_frames]
            logits = model(tokens[:, :n_eval_frames], ego_motion=ego_motion, warped_prev=teacher_warped).logits.float()  # (B, L, V)
            greedy = rollout(model, tokens[:, :n_context], horizon, ego_motion=ego_motion, warped_prev=rollout_warped, warper=warper)  # (B, horizon, h, w)
            topk = rollout(model, tokens[:, :n_context], horizon, sampled, generator, ego_motion=ego_motion, warped_prev=rollout_warped, warper=warper)
            greedy_uncond = rollout(model, tokens[:, :n_context], horizon) if conditioned else greedy
        targets = tokens[:, :n_eval_frames].flatten(1)[:, 1:]  # (B, L-1)
        ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, reduction="none")  # (B, L-1)
        stats.add_ratio("cross_entropy", float(ce.sum()), ce.numel())
        stats.add_ratio("token_accuracy", float((logits[:, :-1].argmax(-1) == targets).sum()), targets.numel())
        stats.add_mean("tokenizer_psnr", _psnr_frames(recon, images))
        pred_images = {name: tokenizer.decode_indices(gen.flatten(0, 1)).view(b, horizon, *images.shape[2:]) for name, gen in (("greedy", greedy), ("topk", topk))}
        pred_images["uncond"] = tokenizer.decode_indices(greedy_uncond.flatten(0, 1)).view(b, horizon, *images.shape[2:]) if conditioned else pred_images["greedy"]
        last_raw, last_tok, last_tokens = images[:, n_context - 1], recon[:, n_context - 1], tokens[:, n_context - 1]
        warped, has_warp = _warp_baseline(store, batch, last_raw, n_context, horizon)  # (B, horizon, 3, H, W), (B,)
        stats.add_mean("warp_coverage", has_warp.float())
        for i in range(horizon):
            k = f"_t{i + 1}"
            truth, truth_tokens = images[:, n_context + i], tokens[:, n_context + i]
            stats.add_frames(k, pred_images["greedy"][:, i], truth, last_raw, c.changed_threshold)
            stats.add_frames(f"_topk{k}", pred_images["topk"][:, i], truth, last_raw, c.changed_threshold, with_ssim=False)
            stats.add_frames(f"_uncond{k}", pred_images["uncond"][:, i], truth, last_raw, c.changed_threshold)
            if conditioned:  # paired per window: what knowing the ego's motion buys (psnr - psnr_uncond)
                gain = psnr_db(pred_images["greedy"][:, i], truth) - psnr_db(pred_images["uncond"][:, i], truth)  # (B,) dB
                stats.add_mean(f"gain_vs_uncond{k}", gain)
                stats.add_mean(f"gain_sq_vs_uncond{k}", gain**2)
                stats.add_mean(f"win_rate_vs_uncond{k}", (gain > 0).float())
            stats.add_frames(f"_copy_last{k}", last_tok, truth, last_raw, c.changed_threshold)
            # Paired per window: how often and by how much the model beats copying (for a standard error).
            gain = psnr_db(pred_images["greedy"][:, i], truth) - psnr_db(last_tok, truth)  # (B,) dB
            stats.add_mean(f"gain_vs_copy_last{k}", gain)
            stats.add_mean(f"gain_sq_vs_copy_last{k}", gain**2)
            stats.add_mean(f"win_rate_vs_copy_last{k}", (gain > 0).float())
            stats.add_frames(f"_copy_last_raw{k}", last_raw, truth, last_raw, c.changed_threshold)
            gain = psnr_db(pred_images["greedy"][:, i], truth) - psnr_db(last_raw, truth)  # (B,) dB: vs doing nothing at all
            stats.add_mean(f"gain_vs_copy_last_raw{k}", gain)
            stats.add_mean(f"gain_sq_vs_copy_last_raw{k}", gain**2)
            stats.add_mean(f"win_rate_vs_copy_last_raw{k}", (gain > 0).float())
            if has_warp.any():
                on = has_warp
                _add_warp_scores(stats, k, pred_images["greedy"][on, i], warped[on, i], truth[on], last_raw[on], c.changed_threshold)
            stats.add_frames(f"_tokenizer{k}", recon[:, n_context + i], truth, last_raw, c.changed_threshold, with_ssim=False)
            n_tokens = truth_tokens.numel()
            stats.add_ratio(f"rollout_token_accuracy{k}", float((greedy[:, i] == truth_tokens).sum()), n_tokens)
            stats.add_ratio(f"copy_last_token_accuracy{k}", float((last_tokens == truth_tokens).sum()), n_tokens)
        for w in range(min(videos_left - len(written), b)):
            truth_frames = images_to_frames(images[w]).cpu().numpy()  # (T, H, W, 3)
            shown = torch.cat([recon[w, :n_context], pred_images["greedy"][w]])  # context through the tokenizer, then predictions
            model_frames = images_to_frames(shown).cpu().numpy()
            strips = [
                _frame_strip([truth_frames[j], model_frames[j]], (40, 180, 40) if j < n_context else (200, 40, 40))
                for j in range(t)
            ]
            name = f"{store.manifest.source}_window{len(written):02d}.{c.video_format}"
            written.append(str(write_video(strips, video_dir / name, fps=min(fps, 4.0))))
    return stats, len(windows), written


def _psnr_frames(reconstruction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR (B*T,) of (B, T, 3, H, W) batches."""
    return psnr_db(reconstruction.flatten(0, 1), truth.flatten(0, 1))


def _warp_baseline(
    store: ClipStore, batch: dict[str, torch.Tensor], last_raw: torch.Tensor, n_context: int, horizon: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last raw context frames (B, 3, H, W) warped on the ground plane by the logged ego motion to each
    predicted frame (world_model.warp) -> (B, horizon, 3, H, W) and (B,) bool, True where defined (the
    window's clip has poses, intrinsics and extrinsics; elsewhere the frames are copy-last)."""
    cameras = _window_cameras(store, batch)
    last = last_raw.float().permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3) in [-1, 1]
    warps = warp_windows(last, cameras, batch["past_poses"].double().numpy(), n_context - 1, horizon)
    frames = torch.from_numpy(warps.frames).permute(0, 1, 4, 2, 3).to(last_raw)  # (B, horizon, 3, H, W)
    return frames, torch.from_numpy(warps.defined).to(last_raw.device)


def _window_cameras(store: ClipStore, batch: dict[str, torch.Tensor]) -> list[tuple[CameraIntrinsics, CameraExtrinsics] | None]:
    """Per window of the batch: its clip's (intrinsics, extrinsics), or None without them or without poses."""
    return [clip_camera(store, i) if has_poses else None for i, has_poses in zip(batch["clip_index"].tolist(), batch["has_poses"].tolist())]


def _add_warp_scores(
    stats: PredictionStats, k: str, prediction: torch.Tensor, warped: torch.Tensor, truth: torch.Tensor, last_raw: torch.Tensor,
    threshold: int,
) -> None:
    """Scores of the warp (*_warp{k}) and the model's paired gain over it, on (N, 3, H, W) windows where it is defined."""
    stats.add_frames(f"_warp{k}", warped, truth, last_raw, threshold)
    gain = psnr_db(prediction, truth) - psnr_db(warped, truth)  # (N,) dB
    stats.add_mean(f"gain_vs_warp{k}", gain)
    stats.add_mean(f"gain_sq_vs_warp{k}", gain**2)
    stats.add_mean(f"win_rate_vs_warp{k}", (gain > 0).float())


def run_eval(c: EvalWorldModelConfig) -> dict[str, Any]:
    """Evaluate and write out/metrics.json (+ out/videos/); returns the metrics."""
    out = Path(c.out)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(c.device)
    loaded = load_world_model(_checkpoint_path(c.checkpoint), map_location=device)
    tok = load_image_tokenizer(c.tokenizer)
    _check_tokenizer(loaded.meta.tokenizer, tok.identity, c.checkpoint, c.tokenizer)
    model, tokenizer = loaded.model.to(device).eval(), tok.model
    tokenizer.to(device).eval()  # type: ignore[attr-defined]
    fps = c.fps if c.fps is not None else loaded.meta.fps
    if fps is None:
        raise ValueError(f"{c.checkpoint} does not record its frame rate: pass fps=<the rate it was trained at>")
    n_context = c.context_frames if c.context_frames is not None else model.config.max_frames - 1
    precision = c.precision if c.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    total = PredictionStats()
    per_source: dict[str, Any] = {}
    videos: list[str] = []
    n_windows = 0
    for clip_dir in c.clip_dirs:
        store = ClipStore(clip_dir)
        stats, n, written = _evaluate_store(model, tokenizer, store, c, n_context, float(fps), device, autocast, c.videos - len(videos), out / "videos")
        name = store.manifest.source
        if name in per_source:  # two stores of one source: tell them apart by directory
            name = f"{name}@{Path(clip_dir).name}"
        per_source[name] = {**_with_margins(stats.summary(), c.horizon, n), "num_windows": n, "clips": str(Path(clip_dir).resolve())}
        total.merge(stats)
        videos += written
        n_windows += n
    counterfactual = None
    if model.config.ego_motion_input and c.counterfactual_frames > 0:
        with autocast:
            counterfactual = _counterfactual_strip(model, tokenizer, c, n_context, float(fps), device, out / COUNTERFACTUAL_PNG)
    tokenizer_only = {}
    for clip_dir in _dirs(c.tokenizer_only_clips):
        store = ClipStore(clip_dir)
        tokenizer_only[f"{store.manifest.source}@{Path(clip_dir).name}"] = {
            **evaluate_reconstruction(tokenizer, store, max_frames=c.max_windows, batch_size=c.batch_size, device=device),
            "clips": str(Path(clip_dir).resolve()),
        }
    metrics: dict[str, Any] = {
        **_with_margins(total.summary(), c.horizon, n_windows),
        "tokenizer_only": tokenizer_only,
        "num_windows": n_windows,
        "context_frames": n_context,
        "horizon": c.horizon,
        "fps": float(fps),
        "per_source": per_source,
        "videos": videos,
        "checkpoint": str(loaded.path),
        "tokenizer": str(tok.weights_path),
        "num_params": model.num_params(),
        "sampling": {"greedy": True, "top_k": c.top_k, "temperature": c.temperature, "seed": c.seed},
        "ego_motion_input": model.config.ego_motion_input,
        "prev_frame_warp": model.config.prev_frame_warp,
        "counterfactual": counterfactual,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(c).items()},
    }
    atomic_write_text(out / METRICS_NAME, json.dumps(metrics, indent=1))
    log.info("eval world_model: %s", {k: metrics[k] for k in ("psnr_t1", "psnr_copy_last_t1", "psnr_copy_last_raw_t1", "tokenizer_psnr")})
    return metrics


def _counterfactual_strip(model: GPT, tokenizer: ImageTokenizer, c: EvalWorldModelConfig, n_context: int, fps: float, device: torch.device,
                          out_png: Path) -> dict[str, Any] | None:
    """Counterfactual rollouts (world_model/counterfactual.py) of the first held-out window with poses:
    its context, then `counterfactual_frames` frames under each manoeuvre, saved as one strip. Returns
    where the context came from and each manoeuvre's motions; None when no store has poses."""
    spec = WindowSpec(n_frames=n_context, fps=fps)
    for clip_dir in c.clip_dirs:
        store = ClipStore(clip_dir)
        windows = ClipWindowDataset(store, spec, require_poses=True)
        if len(windows):
            window = windows[0]
            images = frames_to_images(window["frames"]).to(device)  # (Tc, 3, H, W)
            tokens, _ = _encode(tokenizer, images)  # (Tc, h, w)
            motion = window_motions(window["past_poses"][None], window["has_poses"][None])[0]  # (Tc, 3)
            context_warped = warper = None
            if model.config.prev_frame_warp:
                camera = clip_camera(store, int(window["clip_index"]))  # the window has poses (require_poses)
                context_warped = torch.from_numpy(warped_frame_tokens(tokenizer, window["frames"].numpy(), motion.numpy(), camera))[None].to(device)
                warper = GroundTokenWarper(tokenizer, [camera] * len(MANEUVERS))
            cf_tokens, cf_motions = counterfactual_rollouts(
                model, tokens[None].long(), motion, c.counterfactual_frames, 1.0 / fps, context_warped=context_warped, warper=warper
            )
            frames = {m: images_to_frames(tokenizer.decode_indices(t).float()).cpu().numpy() for m, t in zip(MANEUVERS, cf_tokens)}
            context = images_to_frames(images[-1:].float()).cpu().numpy()[0]
            save_counterfactual_strip(context, frames, dict(zip(MANEUVERS, cf_motions)), 1.0 / fps, out_png)
            return {"png": out_png.name, "clip_id": store.meta(int(window["clip_index"]))["clip_id"], "clips": str(store.root),
                    "start_frame": int(window["start_frame"]), "motions": {m: v.tolist() for m, v in zip(MANEUVERS, cf_motions)}}
    return None


def _with_margins(summary: dict[str, Any], horizon: int, n_windows: int) -> dict[str, Any]:
    """gain_vs_copy_last_t{i}: mean over windows of psnr - psnr_copy_last (dB; > 0: the model beats
    copying through the tokenizer); its standard error over the n windows (paired), and win_rate
    (fraction of windows where the model is better); gain_vs_copy_last_raw_t{i} likewise against the
    raw last frame. gain_vs_warp_t{i} likewise against the ground-plane
    warp, over the num_windows_warp windows where the warp is defined. gain_vs_uncond_t{i} (a
    conditioned model only): the conditioned rollout against the same model's unconditioned one."""
    out = dict(summary)
    n_warp = round(out.get("warp_coverage", 0.0) * n_windows)
    out["num_windows_warp"] = n_warp
    for baseline, n in (("copy_last", n_windows), ("copy_last_raw", n_windows), ("warp", n_warp), ("uncond", n_windows)):
        for i in range(1, horizon + 1):
            mean, sq = out.get(f"gain_vs_{baseline}_t{i}"), out.pop(f"gain_sq_vs_{baseline}_t{i}", None)
            if mean is not None and sq is not None and n > 1:
                variance = max(sq - mean**2, 0.0) * n / (n - 1)
                out[f"gain_vs_{baseline}_t{i}_stderr"] = math.sqrt(variance / n)
    return out


def _checkpoint_path(path: str) -> Path:
    """A training output dir means its export (world_model.safetensors)."""
    p = Path(path)
    if p.is_dir() and not (p / "world_model.safetensors").is_file() and (p / "checkpoints" / "last.ckpt").is_file():
        return p / "checkpoints" / "last.ckpt"
    return p
