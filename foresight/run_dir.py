"""Checks made before an evaluation command does any work: its numeric keys, and its output dir.

An evaluation writes metrics.json and episodes.csv (and videos) at the end of a run that may take
minutes to hours. Two ways to lose that work, or someone else's, are refused up front:
- `out=` holds another run's results: the new run would replace its metrics.json and leave the old
  run's videos beside the new numbers. It is refused unless `overwrite=true`, which removes the old
  results first.
- `out=` cannot be written (read-only, a file in the way): found out before the episodes run, not
  when the results are written.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from data.settings import check_int

# What an evaluation (eval closed_loop / eval ablation) writes into its out dir.
RESULT_ENTRIES = ("metrics.json", "episodes.csv", "videos", "runs", "ablation.md")


def integer_key(d: Mapping[str, Any], key: str, minimum: int) -> int:
    """d[key] as an int >= minimum (an integral float such as 30.0, which YAML arithmetic can give,
    counts as its int); NaN, a fraction, a bool or a string is refused with the key named."""
    value = d[key]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return check_int(key, value, minimum)


def make_out_dir(out: Path) -> Path:
    """Create directory `out` (and its parents); a path that cannot be one (a file in the way, no
    permission) raises NotADirectoryError / PermissionError naming `out=` and what to do."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise NotADirectoryError(f"out={out} cannot be a directory ({exc.strerror or exc})") from exc
    except PermissionError as exc:
        raise PermissionError(f"out={out} cannot be created ({exc.strerror or exc}); choose a writable out=") from exc
    return out


def prepare_out_dir(out: str | Path, overwrite: bool, entries: Iterable[str] = RESULT_ENTRIES) -> Path:
    """Create `out`, refuse it if it holds results of an earlier run (unless `overwrite`, which
    removes them) and check it can be written; returns it. Raises FileExistsError / PermissionError
    / NotADirectoryError with the path and what to do."""
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite must be true or false, got {overwrite!r}")
    out = make_out_dir(Path(out))
    earlier = sorted(name for name in entries if (out / name).exists())
    if earlier and not overwrite:
        raise FileExistsError(
            f"out={out} already holds the results of another run ({', '.join(earlier)}); "
            f"choose another out=, or pass overwrite=true to replace them"
        )
    _check_writable(out)
    for name in earlier:
        path = out / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return out


def _check_writable(out: Path) -> None:
    """Write and remove a probe file in `out` (the permission bits do not tell root's story)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"out={out} is not writable ({exc.strerror or exc}); choose a writable out=") from exc
