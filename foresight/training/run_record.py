"""The resolved config of a run, recorded in out/run_config.json, and what a rerun may change.

A rerun that would resume a run (its checkpoints) must ask for what that run was started with:
the optimizer state, schedule, data order and RNG come from the checkpoint, so a new lr or seed
would be silently ignored or mixed in. Only keys that change how a run is shown, logged or fed
(NEUTRAL_KEYS, NEUTRAL_LEAVES) may differ, and max_steps, which may move to any step the run has
not passed yet (continuing a run for longer; each such change is kept in `segments`). A key that a
run recorded before it existed (LEGACY_DEFAULTS) counts as its value of then.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.store.manifest import atomic_write_text

RECORD_NAME = "run_config.json"
# Keys that never change what a run computes: its output dir, how it reports progress and logs,
# how many checkpoints it keeps, which checkpoint it resumes from (trainer.ckpt_path: checked against
# that checkpoint's own run instead), how fast it loads data or how many CPU threads it uses.
NEUTRAL_KEYS = frozenset(
    {
        "out",
        "trainer.overwrite",
        "trainer.progress_bar",
        "trainer.loggers",
        "trainer.wandb_mode",
        "trainer.wandb_project",
        "trainer.monitors",
        "trainer.threads",
        "trainer.keep_checkpoints",
        "trainer.ckpt_path",
    }
)
# Keys that change what a run computes, added after runs were recorded without them: their value then.
LEGACY_DEFAULTS = {"trainer.accumulate_grad_batches": 1, "trainer.ema_decay": None}
NEUTRAL_LEAVES = frozenset({"num_workers", "log_every_n_steps"})
_ABSENT = object()


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a.b.c": value} for a nested mapping (lists are values)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def as_json(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` as it reads back from JSON (tuples become lists), so recorded and requested compare alike."""
    return json.loads(json.dumps(config, default=str))


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value)


@dataclass(frozen=True)
class RunRecord:
    """config: the run's resolved command config (JSON values); segments: [{"from_step", "max_steps"}],
    one per max_steps the run has trained towards (with "ckpt_path" when it went on from a chosen checkpoint)."""

    config: dict[str, Any]
    segments: tuple[dict[str, Any], ...]

    @classmethod
    def read(cls, out: str | Path) -> RunRecord | None:
        """The record in `out` (None when there is none); ValueError naming the file when it cannot be read."""
        path = Path(out) / RECORD_NAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(dict(data["config"]), tuple(data["segments"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a run record ({exc})") from exc

    def write(self, out: str | Path) -> None:
        atomic_write_text(Path(out) / RECORD_NAME, json.dumps({"config": self.config, "segments": list(self.segments)}, indent=1))

    def differences(self, requested: Mapping[str, Any], max_steps_key: str, trained_steps: int) -> list[str]:
        """'key: recorded -> requested' for every key that may not change when resuming this run
        after `trained_steps` steps (max_steps may change to any value >= trained_steps)."""
        old, new = flatten(self.config), flatten(as_json(requested))
        lines = []
        for key in sorted(set(old) | set(new)):
            if key in NEUTRAL_KEYS or key.rsplit(".", 1)[-1] in NEUTRAL_LEAVES:
                continue
            then = LEGACY_DEFAULTS.get(key, _ABSENT)
            theirs, ours = old.get(key, then), new.get(key, then)
            if theirs == ours:
                continue
            if key == max_steps_key:
                if isinstance(ours, int) and ours >= trained_steps:
                    continue
                lines.append(f"{key}: {_show(theirs)} -> {_show(ours)} (the run has trained {trained_steps} steps already)")
            else:
                lines.append(f"{key}: {_show(theirs)} -> {_show(ours)}")
        return lines

    def continued(self, requested: Mapping[str, Any], from_step: int, max_steps: int, ckpt_path: str | None = None) -> RunRecord:
        """This record for a rerun with `requested` (its neutral keys and max_steps may differ) from
        `from_step`; `ckpt_path`: the chosen checkpoint it goes on from (always a new segment)."""
        segments = self.segments
        if ckpt_path is not None:
            segments = (*segments, {"from_step": from_step, "max_steps": max_steps, "ckpt_path": ckpt_path})
        elif not segments or segments[-1]["max_steps"] != max_steps:
            segments = (*segments, {"from_step": from_step, "max_steps": max_steps})
        return RunRecord(as_json(requested), segments)

    @classmethod
    def fresh(cls, requested: Mapping[str, Any], max_steps: int) -> RunRecord:
        return cls(as_json(requested), ({"from_step": 0, "max_steps": max_steps},))


def discard_run(out: str | Path, names: Sequence[str]) -> None:
    """Remove the files and directories `names` of a run in `out` (nothing else there is touched)."""
    for name in names:
        path = Path(out) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
