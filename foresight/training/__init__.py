"""The one training loop of every stage (`train_stage`), the `trainer` settings it reads, and the
pieces around it: precision decided per machine, resumable data order, RNG state in checkpoints,
resuming from the newest intact checkpoint (or a chosen one), checkpoint retention, the recorded
config of a run, non-finite numbers stopping a run, progress with ETA, loggers with learning-rate and
throughput monitors, a moving average of the weights."""

from foresight.training.data import ResumableData
from foresight.training.finite import NonFiniteTrainingError
from foresight.training.loop import FitResult, TrainingInterrupted, TrainingStage, prepare_run, train_stage
from foresight.training.precision import cpu_has_native_bf16, inference_precision, resolve_precision
from foresight.training.resume import ResumePoint, UnreadableCheckpoints, checkpoint_step
from foresight.training.sampler import ResumableRandomSampler
from foresight.training.settings import TrainerSettings

__all__ = [
    "FitResult", "NonFiniteTrainingError", "ResumableData", "ResumableRandomSampler", "ResumePoint", "TrainerSettings", "TrainingInterrupted",
    "TrainingStage", "UnreadableCheckpoints", "checkpoint_step", "cpu_has_native_bf16", "inference_precision", "prepare_run", "resolve_precision", "train_stage",
]
