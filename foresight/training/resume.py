"""Where a run starts: the newest intact checkpoint in out/checkpoints.

A finished run (final.ckpt at or past max_steps) starts from its end state and trains nothing.
Otherwise the run resumes from last.ckpt, or, when last.ckpt is unreadable (a kill during its
write leaves it truncated) or older than a periodic checkpoint, from the newest readable periodic
checkpoint (`epoch=E-step=N.ckpt`), with a warning naming each unreadable file. Checkpoints are
read with weights_only=True and memory-mapped, so checking one reads its index, not its tensors.

A checkpoint the user chooses (trainer.ckpt_path, `chosen_resume_point`) replaces that search; when
it is an older checkpoint of the run itself, the run's later checkpoints are set aside in
out/checkpoints/superseded/ (`set_aside_newer`), so neither a later rerun nor the retention of
checkpoints mixes them with the run going on from the chosen one.

A run killed while it wrote its very first checkpoint holds nothing to resume: that cut-short file
(`first_checkpoint_cut_short`) is set aside in out/checkpoints/cut_short/ and the run starts over.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)
LAST, FINAL = "last.ckpt", "final.ckpt"
SUPERSEDED = "superseded"
CUT_SHORT = "cut_short"
# What every Lightning checkpoint written during fit holds (a weights-only save lacks the training state).
_TRAINING_STATE = ("global_step", "state_dict", "optimizer_states", "loops")
_PERIODIC_STEP = re.compile(r"step=(\d+)")


class UnreadableCheckpoints(OSError):
    """Checkpoints exist, but none of them can be read to resume from."""


@dataclass(frozen=True)
class ResumePoint:
    """Where a run starts: `checkpoint` (None for a fresh run) and its optimizer step; `finished`:
    the checkpoint is the end state of a run that already reached max_steps (final.ckpt)."""

    checkpoint: Path | None
    start_step: int
    finished: bool


FRESH = ResumePoint(None, 0, False)


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def checkpoint_step(path: Path) -> int:
    """The optimizer step stored in a Lightning checkpoint (0 when it has none)."""
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0))


def readable_step(path: Path) -> int | str:
    """The optimizer step of the checkpoint at `path`, or why it cannot be read."""
    try:
        return checkpoint_step(path)
    except Exception as exc:  # noqa: BLE001 - any failure to read makes it unusable; the reason is reported
        return str(exc).splitlines()[0][:200] or type(exc).__name__


def periodic_checkpoints(directory: Path) -> list[Path]:
    """The periodic checkpoints in `directory`, newest (highest step in the name) first."""
    named = [(int(m.group(1)), p) for p in directory.glob("*.ckpt") if p.name not in (LAST, FINAL) and (m := _PERIODIC_STEP.search(p.name))]
    return [p for _, p in sorted(named, key=lambda item: (-item[0], item[1].name))]


def find_resume_point(out: str | Path, max_steps: int) -> ResumePoint:
    """The checkpoint a run of `max_steps` steps in `out` starts from (see the module docstring).
    UnreadableCheckpoints when checkpoints exist but none can be read."""
    directory = checkpoint_dir(out)
    final = directory / FINAL
    if final.is_file():
        step = readable_step(final)
        if isinstance(step, str):
            log.warning("%s is unreadable (%s); ignoring it", final, step)
        elif step >= max_steps:
            return ResumePoint(final, step, True)
    best: tuple[Path, int] | None = None
    unreadable: list[str] = []
    for path in [directory / LAST, *periodic_checkpoints(directory)]:
        if not path.is_file():
            continue
        named = _PERIODIC_STEP.search(path.name) if path.name != LAST else None
        if best is not None and named is not None and int(named.group(1)) <= best[1]:
            break  # the rest are older than what we have
        step = readable_step(path)
        if isinstance(step, str):
            log.warning("checkpoint %s is unreadable (%s): falling back to an older one", path, step)
            unreadable.append(f"{path.name} ({step})")
        elif best is None or step > best[1]:
            best = (path, step)
    if best is not None:
        if unreadable:
            log.warning("resuming from %s (step %d) instead of the unreadable %s", best[0], best[1], ", ".join(unreadable))
        return ResumePoint(best[0], best[1], False)
    if unreadable:
        raise UnreadableCheckpoints(f"no intact checkpoint to resume from in {directory}: {'; '.join(unreadable)}")
    return FRESH


def chosen_resume_point(path: Path, max_steps: int, architecture: tuple[str, ...], stage: str) -> ResumePoint:
    """Where a run starts when trainer.ckpt_path names `path`: that checkpoint, after checking that
    it is a file (FileNotFoundError), a readable Lightning training checkpoint and one of this stage
    (hyper-parameters with every `architecture` key) (ValueError). Finished when its step is at or
    past max_steps (then nothing is trained and the stage exports that state)."""
    what = f"trainer.ckpt_path={path}"
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - whatever stops it loading, it cannot be resumed; the reason is reported
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ValueError(f"{what} is not a readable Lightning checkpoint ({reason})") from exc
    missing = [key for key in _TRAINING_STATE if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise ValueError(f"{what} is not a Lightning training checkpoint (it has no {missing}); choose one from a run's checkpoints/")
    hparams = checkpoint.get("hyper_parameters") or {}
    absent = [key for key in architecture if key not in hparams]
    if absent:
        found = ", ".join(sorted(hparams)) or "none"
        raise ValueError(f"{what} is not a checkpoint of the {stage} stage: it has no {absent} settings (its hyper-parameters: {found})")
    step = int(checkpoint["global_step"])
    return ResumePoint(path, step, step >= max_steps)


def set_aside_newer(out: str | Path, step: int) -> list[Path]:
    """Move the readable checkpoints in out/checkpoints of a step past `step` (last.ckpt and
    final.ckpt included) to out/checkpoints/superseded/, replacing files of the same name there.
    Returns where they went."""
    directory = checkpoint_dir(out)
    moved = []
    for path in sorted(directory.glob("*.ckpt")):
        found = readable_step(path)
        if isinstance(found, int) and found > step:
            target = directory / SUPERSEDED / path.name
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
            moved.append(target)
    return moved


def first_checkpoint_cut_short(out: str | Path, first_step: int) -> Path | None:
    """The cut-short write of a run's first checkpoint, when that is all out/checkpoints holds: a
    single periodic checkpoint of a step <= `first_step` (the checkpoint interval) that is not a
    whole torch archive (a kill during `torch.save` leaves it without its zip directory, which is
    written last). None otherwise: a run that got further, or a file unreadable for another reason
    (permissions, a newer torch), is not one to start over on."""
    directory = checkpoint_dir(out)
    files = sorted(directory.glob("*.ckpt")) if directory.is_dir() else []
    if len(files) != 1:
        return None
    (path,) = files
    named = _PERIODIC_STEP.search(path.name) if path.name not in (LAST, FINAL) else None
    if named is None or int(named.group(1)) > first_step or not isinstance(readable_step(path), str):
        return None
    try:
        whole = zipfile.is_zipfile(path)
    except OSError:
        return None
    return None if whole else path


def set_aside_cut_short(path: Path) -> Path:
    """Move a cut-short checkpoint to out/checkpoints/cut_short/ (kept, not deleted); returns where it went."""
    target = path.parent / CUT_SHORT / path.name
    target.parent.mkdir(exist_ok=True)
    os.replace(path, target)
    return target
