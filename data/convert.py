"""Drive a conversion: source items -> clips -> store, with progress, per-item errors and resume."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from data.errors import BadFileReporter, DataError, MissingFileError, NothingConvertedError
from data.schema import Clip
from data.settings import FrameSettings
from data.store.manifest import Manifest
from data.store.writer import ClipStoreWriter

log = logging.getLogger(__name__)
MAX_LISTED_REASONS = 20  # per-item reasons in a NothingConvertedError message (all are in the manifest)


@dataclass(frozen=True)
class SourceItem:
    """One unit of conversion (a scene, a log, a video).

    key: stable across runs (used to resume). load(report_bad_file) builds the item's clips and calls
    `report_bad_file(path, reason)` for each file it had to leave out (a corrupt image, say); it
    raises DataError when the whole item is unusable.
    """

    key: str
    load: Callable[[BadFileReporter], Iterable[Clip]]


def progress_bar(transient: bool = False) -> Progress:
    """The project's progress bar: count, bar, elapsed and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=transient,
    )


def convert_items(writer: ClipStoreWriter, items: Iterable[SourceItem], total: int | None, description: str) -> Manifest:
    """Convert every item not already done; a DataError skips that item (logged and counted)."""
    with writer, progress_bar() as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            if writer.is_done(item.key):
                progress.advance(task)
                continue
            bad: list[dict[str, str]] = []

            def report(path: Path, reason: str, key: str = item.key) -> None:
                log.error("%s: leaving out %s: %s", key, path, reason)
                progress.console.print(f"[yellow]left out[/yellow] {path}: {reason}")
                bad.append({"item": key, "file": str(path), "reason": reason})

            try:
                writer.add(item.key, _nonempty(item.key, item.load(report)), bad)
            except DataError as exc:
                log.error("skipping %s: %s", item.key, exc)
                progress.console.print(f"[red]skipped[/red] {item.key}: {exc}")
                writer.skip(item.key, str(exc), bad, retry=isinstance(exc, MissingFileError))
            progress.advance(task)
    return writer.manifest


def _nonempty(key: str, clips: Iterable[Clip]) -> Iterator[Clip]:
    """Pass clips through (a list or a generator); an item with none is an error."""
    n = 0
    for clip in clips:
        n += 1
        yield clip
    if n == 0:
        raise DataError(f"{key}: no clips (empty, too short, or every frame unreadable)")


def convert_to_store(cfg, source: str, items: list[SourceItem], description: str) -> Manifest:
    """Standard ending of every `foresight data <source>` command: write `items` into `cfg.out`.

    The frame and store keys (configs/data/frames.yaml) are validated before anything is written.
    The store's recorded config is the composed config minus `out`, `overwrite` and `workers` (none
    changes what is written), so rerunning the same command resumes, and a different config is
    refused instead of mixed in. A store left without a single clip (every item skipped, or no
    item) is not a finished conversion: NothingConvertedError lists each item's reason.
    """
    from omegaconf import OmegaConf

    frames = FrameSettings.from_cfg(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    for key in ("out", "overwrite", "workers"):
        config.pop(key, None)
    writer = ClipStoreWriter(
        cfg.out,
        source=source,
        config=config,
        codec=frames.codec,
        jpeg_quality=frames.jpeg_quality,
        clips_per_shard=frames.clips_per_shard,
        overwrite=frames.overwrite,
    )
    manifest = convert_items(writer, items, len(items), description)
    print(
        f"{source}: {manifest.num_clips} clips, {manifest.num_frames} frames in {cfg.out}; "
        f"skipped {len(manifest.skipped)} items and {len(manifest.skipped_files)} files"
    )
    if manifest.num_clips == 0:
        manifest.complete = False  # an empty store is no finished conversion; a rerun retries what may
        manifest.save(writer.out_dir)
        raise NothingConvertedError(_nothing_converted_message(cfg.out, len(items), manifest.skipped), manifest.skipped)
    return manifest


def _nothing_converted_message(out, num_items: int, skipped: list[dict[str, str]]) -> str:
    if not skipped:
        return f"nothing converted into {out}: there were {num_items} items to convert"
    lines = [f"nothing converted into {out}: all {len(skipped)} items were skipped:"]
    lines += [f"  {s['item']}: {s['reason']}" for s in skipped[:MAX_LISTED_REASONS]]
    if len(skipped) > MAX_LISTED_REASONS:
        lines.append(f"  ... and {len(skipped) - MAX_LISTED_REASONS} more (every reason is in {out}/manifest.json)")
    return "\n".join(lines)
