"""The one training loop of every stage (`train_stage`), the `trainer` settings it reads, and the
pieces around it: precision decided per machine, resumable data order, RNG state in checkpoints,
progress with ETA."""

from foresight.training.data import ResumableData
from foresight.training.loop import FitResult, ResumePoint, TrainingStage, checkpoint_step, prepare_run, train_stage
from foresight.training.precision import cpu_has_native_bf16, resolve_precision
from foresight.training.sampler import ResumableRandomSampler
from foresight.training.settings import TrainerSettings

__all__ = [
    "FitResult", "ResumableData", "ResumableRandomSampler", "ResumePoint", "TrainerSettings", "TrainingStage", "checkpoint_step",
    "cpu_has_native_bf16", "prepare_run", "resolve_precision", "train_stage",
]
