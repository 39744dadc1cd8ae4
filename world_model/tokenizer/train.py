"""`run_train(cfg)`: train a ConvTokenizer on the frames of a clip store, export it, measure it.

Outputs in `out/`: checkpoints/last.ckpt (+ every `checkpoint_every_n_steps`; a rerun of the same
config resumes from the newest intact one, bit for bit), run_config.json (the run's config),
tokenizer.safetensors + tokenizer.json (the final weights and config, no pickle), logs/ (CSV
metrics; tensorboard/ and wandb/ with trainer.loggers) and train_summary.json (reconstruction
quality and speed).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from configs import build, plain
from data.store.reader import ClipStore
from foresight.training import FitResult, ResumableData, TrainerSettings, TrainingStage, prepare_run, train_stage
from world_model.tokenizer.encoding import ImageTokenizer
from world_model.tokenizer.export import WEIGHTS_NAME, export_tokenizer
from world_model.tokenizer.frames import StoreFrameDataset, all_frame_refs, evenly_spaced, split_frames
from world_model.tokenizer.lightning_module import TokenizerLightningModule
from world_model.tokenizer.metrics import psnr_db, ssim
from world_model.tokenizer.model import tokenizer_config
from world_model.tokenizer.pixels import frames_to_images
from world_model.tokenizer.quantizer import code_usage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenizerProfile:
    """The `tokenizer` section (configs/tokenizer_profile/): `size` (TOKENIZER_SIZES) with `model`
    overriding fields of that preset (e.g. {"quantizer": "vq"}); AdamW (lr, betas, weight_decay)
    with linear warmup then cosine decay to min_lr_ratio * lr; L1 / L2 / perceptual loss weights
    (perceptual_weights: a local VGG16 state dict, nothing is downloaded); val_frames held out for
    validation PSNR / SSIM, eval_frames for the final reconstruction numbers; the cadence in steps;
    num_workers DataLoader processes; seed."""

    size: str
    model: dict[str, Any]
    batch_size: int
    max_steps: int
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    warmup_steps: int
    min_lr_ratio: float
    grad_clip: float
    l1_weight: float
    l2_weight: float
    perceptual_weight: float
    perceptual_weights: str | None
    val_frames: int
    val_every_n_steps: int
    eval_frames: int
    checkpoint_every_n_steps: int
    log_every_n_steps: int
    num_workers: int
    seed: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", dict(self.model or {}))
        if self.batch_size < 1 or self.max_steps < 1 or self.lr <= 0 or self.warmup_steps < 0:
            raise ValueError(f"tokenizer: invalid batch_size/max_steps/lr/warmup_steps in {self}")


@dataclass(frozen=True)
class TrainTokenizerConfig:
    """`foresight train tokenizer` (configs/train/tokenizer.yaml): the clip store to train on, the
    output directory, the `tokenizer` profile and the `trainer` group."""

    clips: str
    out: str
    tokenizer: TokenizerProfile
    trainer: TrainerSettings

    def __post_init__(self) -> None:
        if not self.clips or not self.out:
            raise ValueError("train tokenizer: `clips` (clip store dir) and `out` (output dir) are required")

    @classmethod
    def from_config(cls, cfg: Any) -> "TrainTokenizerConfig":
        return build(cls, own_config(cfg), "train tokenizer")


def own_config(cfg: Any) -> dict[str, Any]:
    """The keys of the composed config that `train tokenizer` reads (not the other stages' profiles)."""
    return {k: v for k, v in plain(cfg).items() if k not in ("world_model", "planner")}


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


def run_train(cfg: Any, callbacks: list[Callback] | None = None) -> dict[str, Any]:
    """Train, export (tokenizer.safetensors + .json) and evaluate; returns train_summary.json's content.
    `callbacks` are added to the loop's (tests use them to observe or interrupt a run)."""
    c = TrainTokenizerConfig.from_config(cfg)
    p = c.tokenizer
    out = Path(c.out)
    stage = TrainingStage(
        name="tokenizer", out=out, max_steps=p.max_steps, val_every_n_steps=p.val_every_n_steps, checkpoint_every_n_steps=p.checkpoint_every_n_steps,
        log_every_n_steps=p.log_every_n_steps, grad_clip=p.grad_clip, architecture=("tokenizer",), fsdp_units=(),
        config=own_config(cfg), max_steps_key="tokenizer.max_steps", exports=(WEIGHTS_NAME, str(Path(WEIGHTS_NAME).with_suffix(".json"))),
        batch_size=p.batch_size,
    )
    start = prepare_run(stage, c.trainer, p.seed)
    arch = tokenizer_config(p.size, **p.model)
    store = ClipStore(c.clips)
    split = split_frames(store, p.val_frames)
    train_ds, val_ds = StoreFrameDataset(store, split.train), StoreFrameDataset(store, split.val)
    data = ResumableData(train_ds, p.batch_size, p.max_steps, p.checkpoint_every_n_steps, p.seed, val=val_ds, num_workers=p.num_workers)
    module = TokenizerLightningModule(
        tokenizer=arch.to_dict(), lr=p.lr, betas=p.betas, weight_decay=p.weight_decay, warmup_steps=p.warmup_steps,
        total_steps=p.max_steps, min_lr_ratio=p.min_lr_ratio,
        loss_weights={"l1": p.l1_weight, "l2": p.l2_weight, "perceptual": p.perceptual_weight},
        perceptual_weights=p.perceptual_weights,
    )

    def export(result: FitResult) -> dict[str, Any]:
        if not result.is_global_zero:
            return {}
        model = result.module.model.eval()
        quality = evaluate_reconstruction(model, store, p.eval_frames, p.batch_size, device=result.module.device)
        fields = {
            "train_images_per_s": round(result.samples_per_second(p.batch_size), 2),
            "num_params": sum(t.numel() for t in model.parameters()),
            "grid_hw": [int(size) // arch.downsample_factor for size in train_ds[0].shape[:2]],
            "codebook_size": arch.codebook_size,
            "eval": quality,
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(p).items()},
        }
        extra = {"steps": result.trainer.global_step, "eval": quality, "config": fields["config"]}
        fields["weights"] = str(export_tokenizer(model.cpu(), out, extra=extra))
        log.info("tokenizer: %s", json.dumps(quality))
        return fields

    return train_stage(stage, module, c.trainer, export, start, datamodule=data, callbacks=callbacks or [])
