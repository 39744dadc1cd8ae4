"""`run_train(cfg)`: train a ConvTokenizer on the frames of a clip store, export it, measure it.

Outputs in `out/`: checkpoints/last.ckpt (+ every `checkpoint_every_n_steps`; a rerun resumes from
last.ckpt), tokenizer.safetensors + tokenizer.json (the final weights and config, no pickle),
logs/ (CSV metrics) and train_summary.json (reconstruction quality and speed).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from data.store.manifest import atomic_write_text
from data.store.reader import ClipStore
from world_model.tokenizer.encoding import ImageTokenizer
from world_model.tokenizer.export import export_tokenizer
from world_model.tokenizer.frames import StoreFrameDataset, all_frame_refs, evenly_spaced, split_frames
from world_model.tokenizer.lightning_module import TokenizerLightningModule
from world_model.tokenizer.metrics import psnr_db, ssim
from world_model.tokenizer.model import tokenizer_config
from world_model.tokenizer.pixels import frames_to_images
from world_model.tokenizer.quantizer import code_usage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainTokenizerConfig:
    """Settings of `run_train`; `clips` and `out` are required. `model` overrides fields of the
    `size` preset (see TOKENIZER_SIZES), e.g. {"quantizer": "vq"}."""

    clips: str
    out: str
    size: str = "tiny"
    model: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    max_steps: int = 2000
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    perceptual_weight: float = 0.1
    perceptual_weights: str | None = None
    val_frames: int = 64
    val_every_n_steps: int = 500
    eval_frames: int = 256
    checkpoint_every_n_steps: int = 500
    log_every_n_steps: int = 10
    num_workers: int = 2
    seed: int = 0
    accelerator: str = "auto"
    devices: Any = "auto"
    precision: str = "auto"
    resume: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "model", dict(self.model or {}))
        if not self.clips or not self.out:
            raise ValueError("train tokenizer: `clips` (clip store dir) and `out` (output dir) are required")
        if self.batch_size < 1 or self.max_steps < 1 or self.lr <= 0 or self.warmup_steps < 0:
            raise ValueError(f"train tokenizer: invalid batch_size/max_steps/lr/warmup_steps in {self}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> "TrainTokenizerConfig":
        return cls(**_checked_keys(cls, _plain(cfg), "train tokenizer"))


def _plain(cfg: Any) -> dict[str, Any]:
    """A DictConfig or mapping as a plain dict (interpolations resolved)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return dict(cfg)


def _checked_keys(cls: type, d: dict[str, Any], what: str) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{what}: unknown config keys {unknown}; known keys are {sorted(known)}")
    return d


def resolve_precision(precision: str) -> str:
    """'auto' -> bf16 autocast on CUDA, fp32 elsewhere; anything else is passed to Lightning as is."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if torch.cuda.is_available() else "32-true"


@torch.no_grad()
def evaluate_reconstruction(
    tokenizer: ImageTokenizer, store: ClipStore | str | Path, max_frames: int = 256, batch_size: int = 16,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Encode -> decode up to `max_frames` frames spread evenly over `store`.

    Returns mean per-frame psnr_db and ssim (on 8-bit pixels), num_frames, and code_usage /
    perplexity of all their tokens together. Runs in fp32; restores the tokenizer's train/eval mode.
    """
    store = store if isinstance(store, ClipStore) else ClipStore(store)
    refs = evenly_spaced(all_frame_refs(store), max_frames)
    if len(refs) == 0:
        raise ValueError(f"clip store {store.root} holds no frames to evaluate on")
    module = tokenizer if isinstance(tokenizer, torch.nn.Module) else None
    if device is None:
        device = next(module.parameters()).device if module is not None else torch.device("cpu")
    was_training = bool(module and module.training)
    if module is not None:
        module.eval()
    psnrs, ssims, codes = [], [], []
    dataset = StoreFrameDataset(store, refs)
    try:
        for frames in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            images = frames_to_images(frames.to(device))
            enc = tokenizer.encode(images)
            rec = tokenizer.decode_indices(enc.indices)
            psnrs.append(psnr_db(rec, images).cpu())
            ssims.append(ssim(rec, images).cpu())
            codes.append(enc.indices.reshape(-1).cpu())
    finally:
        if module is not None and was_training:
            module.train()
    usage = code_usage(torch.cat(codes), tokenizer.codebook_size)
    return {
        "psnr_db": float(torch.cat(psnrs).mean()),
        "ssim": float(torch.cat(ssims).mean()),
        "num_frames": int(len(refs)),
        "code_usage": usage.fraction_used,
        "perplexity": usage.perplexity,
    }


class _TrainClock(Callback):
    """Step and time at the start of fitting (after a resume restored the step), for throughput."""

    def __init__(self) -> None:
        self.start_step: int | None = None  # stays None when a resumed run had no steps left
        self.t0 = time.perf_counter()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.start_step, self.t0 = trainer.global_step, time.perf_counter()


def run_train(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Train, export (tokenizer.safetensors + .json) and evaluate; returns train_summary.json's content."""
    c = TrainTokenizerConfig.from_mapping(cfg)
    out = Path(c.out)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(c.seed, workers=True, verbose=False)
    arch = tokenizer_config(c.size, **c.model)
    store = ClipStore(c.clips)
    split = split_frames(store, c.val_frames)
    train_ds, val_ds = StoreFrameDataset(store, split.train), StoreFrameDataset(store, split.val)
    workers = dict(num_workers=c.num_workers, persistent_workers=c.num_workers > 0)
    train_dl = DataLoader(
        train_ds, batch_size=c.batch_size, shuffle=True, drop_last=len(train_ds) >= c.batch_size,
        generator=torch.Generator().manual_seed(c.seed), **workers,
    )
    val_dl = DataLoader(val_ds, batch_size=c.batch_size, shuffle=False, **workers) if len(val_ds) else None
    module = TokenizerLightningModule(
        tokenizer=arch.to_dict(), lr=c.lr, betas=c.betas, weight_decay=c.weight_decay, warmup_steps=c.warmup_steps,
        total_steps=c.max_steps, min_lr_ratio=c.min_lr_ratio,
        loss_weights={"l1": c.l1_weight, "l2": c.l2_weight, "perceptual": c.perceptual_weight},
        perceptual_weights=c.perceptual_weights,
    )
    ckpt_dir = out / "checkpoints"
    clock = _TrainClock()
    trainer = L.Trainer(
        max_steps=c.max_steps,
        accelerator=c.accelerator,
        devices=c.devices,
        precision=resolve_precision(c.precision),
        gradient_clip_val=c.grad_clip or None,
        logger=CSVLogger(str(out), name="logs"),
        callbacks=[clock, ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=-1, every_n_train_steps=c.checkpoint_every_n_steps)],
        val_check_interval=min(c.val_every_n_steps, c.max_steps) if val_dl is not None else None,
        check_val_every_n_epoch=None,
        limit_val_batches=None if val_dl is not None else 0,
        log_every_n_steps=c.log_every_n_steps,
        num_sanity_val_steps=0,
        enable_model_summary=False,
    )
    last = ckpt_dir / "last.ckpt"
    resume_from = str(last) if c.resume and last.is_file() else None
    if resume_from:
        log.info("resuming tokenizer training from %s", resume_from)
    trainer.fit(module, train_dl, val_dl, ckpt_path=resume_from)
    seconds = time.perf_counter() - clock.t0
    summary: dict[str, Any] = {}
    if trainer.is_global_zero:
        steps_run = trainer.global_step - (trainer.global_step if clock.start_step is None else clock.start_step)
        model = module.model.eval()
        quality = evaluate_reconstruction(model, store, c.eval_frames, c.batch_size, device=module.device)
        summary = {
            "steps": trainer.global_step,
            "steps_this_run": steps_run,
            "train_seconds": round(seconds, 2),
            "train_images_per_s": round(steps_run * c.batch_size / max(seconds, 1e-9), 2),
            "num_params": sum(p.numel() for p in model.parameters()),
            "grid_hw": [int(s) // arch.downsample_factor for s in train_ds[0].shape[:2]],
            "codebook_size": arch.codebook_size,
            "eval": quality,
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(c).items()},
        }
        weights = export_tokenizer(model.cpu(), out, extra={k: summary[k] for k in ("steps", "eval", "config")})
        summary["weights"] = str(weights)
        atomic_write_text(out / "train_summary.json", json.dumps(summary, indent=1))
        log.info("tokenizer: %s", json.dumps(summary["eval"]))
    return summary
