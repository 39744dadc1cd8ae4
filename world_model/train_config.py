"""Settings of `foresight train world_model`, validated: the world-model profile (`world_model.*`),
the trainer (`trainer.*`, `foresight.training.TrainerSettings`) and the command's own keys.

Every default lives in the YAML files (configs/world_model_profile/, configs/trainer/,
configs/train/world_model.yaml); these dataclasses only check and type them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from configs import build, plain
from foresight.training import TrainerSettings
from world_model.gpt.config import GPT_SIZES, GPTConfig, gpt_config
from world_model.schedule import WSDSchedule


@dataclass(frozen=True)
class WorldModelProfile:
    """The `world_model` section: architecture, data rate and the optimisation recipe.

    size: GPT_SIZES key; model: GPTConfig fields replacing the size's (e.g. prev_frame_token_input);
    n_frames: frames per training window = the GPT's context (max_frames); fps: model frame rate
    (token clips are subsampled to it; null = the stores' own rate); batch_size: windows per rank
    per step; schedule: WSD fractions (warmup_frac, decay_frac, final_frac, decay_shape);
    checkpoint_every_n_steps: periodic checkpoints (also the epoch length); val_clips: clips per
    source held out for validation loss; val_windows: validation windows per source;
    ego_motion_dropout: probability that all ego motions of a training window are dropped (for a
    model with model.ego_motion_input; 1.0 = always: VaViM's unconditioned training).
    """

    size: str
    model: dict[str, Any]
    n_frames: int
    fps: float | None
    batch_size: int
    max_steps: int
    lr: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    schedule: dict[str, Any]
    grad_clip: float
    compile: bool
    checkpoint_every_n_steps: int
    val_every_n_steps: int
    val_clips: int
    val_windows: int
    log_every_n_steps: int
    num_workers: int
    seed: int
    ego_motion_dropout: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "model", dict(self.model or {}))
        object.__setattr__(self, "schedule", dict(self.schedule or {}))
        if self.size not in GPT_SIZES:
            raise ValueError(f"world_model.size must be one of {sorted(GPT_SIZES)}, got {self.size!r}")
        for name in ("n_frames", "batch_size", "max_steps", "checkpoint_every_n_steps", "val_every_n_steps", "log_every_n_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"world_model.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_frames < 2:
            raise ValueError(f"world_model.n_frames must be >= 2 (context + the predicted frame), got {self.n_frames}")
        if self.fps is not None and not float(self.fps) > 0:
            raise ValueError(f"world_model.fps must be > 0 or null, got {self.fps}")
        if self.val_clips < 0 or self.val_windows < 0 or self.num_workers < 0 or self.grad_clip < 0:
            raise ValueError("world_model.val_clips, val_windows, num_workers and grad_clip must be >= 0")
        if isinstance(self.ego_motion_dropout, bool) or not isinstance(self.ego_motion_dropout, (int, float)) or not 0.0 <= self.ego_motion_dropout <= 1.0:
            raise ValueError(f"world_model.ego_motion_dropout must be a probability in [0, 1], got {self.ego_motion_dropout!r}")
        self.wsd()  # validates the schedule fractions

    def gpt(self, vocab_size: int, grid_hw: tuple[int, int]) -> GPTConfig:
        unknown = sorted(set(self.model) - {f.name for f in fields(GPTConfig)})
        if unknown:
            raise ValueError(f"world_model.model: unknown GPTConfig fields {unknown}")
        fixed = {"vocab_size", "tokens_h", "tokens_w", "max_frames"} & set(self.model)
        if fixed:
            raise ValueError(f"world_model.model must not set {sorted(fixed)}: they come from the token stores and n_frames")
        return gpt_config(self.size, vocab_size=vocab_size, tokens_h=grid_hw[0], tokens_w=grid_hw[1], max_frames=self.n_frames, **self.model)

    def wsd(self) -> WSDSchedule:
        unknown = sorted(set(self.schedule) - {"warmup_frac", "decay_frac", "final_frac", "decay_shape"})
        if unknown:
            raise ValueError(f"world_model.schedule: unknown keys {unknown}")
        return WSDSchedule(total_steps=int(self.max_steps), **self.schedule)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "WorldModelProfile":
        return build(cls, values, "world_model")


@dataclass(frozen=True)
class TrainWorldModelConfig:
    """`foresight train world_model`: tokens (DIR[,DIR2]) or sources ({name: {tokens, weight}}); out;
    init_from: a stage-1 checkpoint whose weights and optimizer state start this run (ignored when
    out/checkpoints/last.ckpt exists: then the run resumes)."""

    tokens: Any
    sources: dict[str, Any]
    out: str
    init_from: str | None
    world_model: WorldModelProfile
    trainer: TrainerSettings
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.out:
            raise ValueError("train world_model: `out` (output directory) is required")

    @classmethod
    def from_config(cls, cfg: Any) -> "TrainWorldModelConfig":
        """From the composed command config (configs/train/world_model.yaml)."""
        d = plain(cfg)
        own = {f.name for f in fields(cls)} - {"world_model", "trainer", "raw"}
        unknown = sorted(set(d) - own - {"world_model", "trainer", "tokenizer", "planner"})  # other stages' profiles come with `experiment`
        missing = sorted(own - set(d))
        if missing or unknown:
            raise ValueError(f"train world_model: missing config keys {missing}, unknown {unknown}")
        return cls(
            **{k: d[k] for k in own},
            world_model=WorldModelProfile.from_mapping(d["world_model"]),
            trainer=TrainerSettings.from_mapping(d["trainer"]),
            raw=d,
        )
