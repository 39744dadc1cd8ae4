"""Drive a conversion: source items -> clips -> store, on every core and across machines.

Items (a scene, a log, a video) are converted one per worker process (`workers`), each straight into
its own shards (data/store/item_shards.py); under torchrun or SLURM each rank takes its share of the
items (data/ranks.py) and journals what it finished; the last step merges the journals into
manifest.json (data/store/journal.py). A bad item is skipped with its reason, a bad file inside an
item is left out by name, and a rerun converts only what is not finished. The store is the same,
byte for byte, for any number of workers and ranks.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from data.errors import BadFileReporter, DataError, MissingFileError, NothingConvertedError
from data.ranks import DistEnv, barrier, process_group
from data.schema import Clip
from data.settings import FrameSettings
from data.store.item_shards import write_item_shards
from data.store.journal import ConversionJournal, ItemResult
from data.store.manifest import Manifest
from sim_eval.worker_process import exit_with_parent

log = logging.getLogger(__name__)
MAX_LISTED_REASONS = 20  # per-item reasons in a NothingConvertedError message (all are in the manifest)
BARRIER_TIMEOUT = timedelta(days=7)  # ranks wait at the end for the slowest one, which may convert for days
# Keys of a conversion's config that change how it runs, not what it writes (left out of the store's identity).
RUN_KEYS = ("out", "overwrite", "workers", "decode_threads")


@dataclass(frozen=True)
class SourceItem:
    """One unit of conversion (a scene, a log, a video).

    key: stable across runs (used to resume). load(report_bad_file) builds the item's clips (a list
    or a generator) and calls `report_bad_file(path, reason)` for each file it had to leave out (a
    corrupt image, say); it raises DataError when the whole item is unusable.
    """

    key: str
    load: Callable[[BadFileReporter], Iterable[Clip]]


@dataclass(frozen=True)
class ShardFormat:
    """How clips are written: frame codec (jpeg | png | raw), JPEG quality, clips per shard."""

    codec: str
    jpeg_quality: int
    clips_per_shard: int


ItemsMaker = Callable[[], list[SourceItem]]
"""A picklable function that lists a conversion's items; each worker process calls it once."""


def progress_bar(transient: bool = False) -> Progress:
    """The project's progress bar: count, bar, elapsed and ETA, on stderr (stdout stays for results, e.g. a bench's JSON)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
    )


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a SLURM allocation, a container limit)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_workers(workers: int) -> int:
    """`workers` processes; 0 means one per available core."""
    return workers if workers > 0 else available_cores()


def convert_item(item: SourceItem, out_dir: Path, fmt: ShardFormat) -> ItemResult:
    """Convert one item into its shards; a DataError skips it (with the reason and the files left out)."""
    bad: list[dict[str, str]] = []

    def report(path: Path, reason: str) -> None:
        log.error("%s: leaving out %s: %s", item.key, path, reason)
        bad.append({"item": item.key, "file": str(path), "reason": reason})

    try:
        clips = _nonempty(item.key, item.load(report))
        shards = write_item_shards(out_dir, item.key, clips, fmt.codec, fmt.jpeg_quality, fmt.clips_per_shard)
        return ItemResult(item.key, tuple(shards), bad_files=tuple(bad))
    except DataError as exc:
        log.error("skipping %s: %s", item.key, exc)
        return ItemResult(item.key, skip_reason=str(exc), retry=isinstance(exc, MissingFileError), bad_files=tuple(bad))


def _nonempty(key: str, clips: Iterable[Clip]) -> Iterator[Clip]:
    """Pass clips through (a list or a generator); an item with none is an error."""
    n = 0
    for clip in clips:
        n += 1
        yield clip
    if n == 0:
        raise DataError(f"{key}: no clips (empty, too short, or every frame unreadable)")


# ----------------------------------------------------------------------------- worker processes

_WORKER_ITEMS: list[SourceItem] = []


def _start_worker(parent_pid: int, make_items: ItemsMaker, cv2_threads: int) -> None:
    """Pool initializer: die with the parent, share the cores fairly, list the items once."""
    global _WORKER_ITEMS
    exit_with_parent(parent_pid)
    import cv2

    cv2.setNumThreads(cv2_threads)
    _WORKER_ITEMS = make_items()


def _convert_in_worker(position: int, key: str, out_dir: Path, fmt: ShardFormat) -> ItemResult:
    item = _WORKER_ITEMS[position]
    if item.key != key:  # the inputs changed while the conversion ran (a file appeared, say)
        raise RuntimeError(f"worker lists item {item.key!r} at position {position}, the parent {key!r}; the inputs changed, run again")
    return convert_item(item, out_dir, fmt)


class _ItemRunner:
    """Runs items in this process (workers=1) or in a pool of spawn processes, results in any order."""

    def __init__(self, workers: int, make_items: ItemsMaker | None) -> None:
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1:
            if make_items is None:
                raise ValueError("workers > 1 needs a picklable function that lists the items")
            self.pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),  # no forked copies of thread pools or open files
                initializer=_start_worker,
                initargs=(os.getpid(), make_items, max(1, available_cores() // workers)),
            )

    def run(self, todo: list[tuple[int, SourceItem]], out_dir: Path, fmt: ShardFormat) -> Iterator[ItemResult]:
        if self.pool is None:
            for _, item in todo:
                yield convert_item(item, out_dir, fmt)
            return
        pending: set[Future] = {self.pool.submit(_convert_in_worker, pos, item.key, out_dir, fmt) for pos, item in todo}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()

    def close(self, failed: bool) -> None:
        if self.pool is None:
            return
        if failed:  # items in flight are lost anyway (their shards are not journaled): stop now
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
        self.pool.shutdown(wait=not failed, cancel_futures=True)


# ----------------------------------------------------------------------------- the conversion


@dataclass(frozen=True)
class ConversionResult:
    """manifest: the merged store manifest when `merged`, else this rank's journal (its items only)."""

    manifest: Manifest
    merged: bool


def convert_items(
    out_dir: str | Path,
    source: str,
    config: dict,
    items: list[SourceItem],
    fmt: ShardFormat,
    *,
    description: str,
    make_items: ItemsMaker | None = None,
    workers: int = 1,
    overwrite: bool = False,
    env: DistEnv | None = None,
) -> ConversionResult:
    """Convert the items of this rank that are not finished into `out_dir`, then (the only rank, or
    rank 0 after the others, when the ranks can synchronise) merge the journals into manifest.json.

    config: the store's identity (JSON-able; a different one is refused unless `overwrite`).
    make_items: lists the same `items` in a worker process (needed for workers > 1).
    env: this process's rank (default: from the launcher's environment variables).
    """
    env = DistEnv.from_environ() if env is None else env
    out_dir = Path(out_dir)
    with process_group(env, BARRIER_TIMEOUT) as synced:
        journal = ConversionJournal(out_dir, source, config, fmt.codec, [i.key for i in items], env, overwrite)
        todo = [(pos, item) for pos, item in enumerate(items) if journal.owns(item.key) and not journal.is_done(item.key)]
        share = sum(1 for i in items if journal.owns(i.key))
        label = description if env.world_size == 1 else f"{description} (rank {env.rank}/{env.world_size})"
        runner = _ItemRunner(min(workers, max(1, len(todo))), make_items)
        failed = True
        try:
            with progress_bar() as progress:
                task = progress.add_task(label, total=share, completed=share - len(todo), visible=env.rank == 0 or not synced)
                for result in runner.run(todo, out_dir, fmt):
                    for f in result.bad_files:
                        progress.console.print(f"[yellow]left out[/yellow] {f['file']}: {f['reason']}")
                    if result.skip_reason is not None:
                        progress.console.print(f"[red]skipped[/red] {result.key}: {result.skip_reason}")
                    journal.record(result)
                    progress.advance(task)
            failed = False
        finally:
            runner.close(failed)
        journal.save()
        own = ConversionResult(journal.journals.snapshot(journal.own, complete=False), merged=False)
        if env.world_size > 1 and not synced:
            print(f"{source}: rank {env.rank} of {env.world_size} finished its {share} items; once every rank has, "
                  f"run `foresight data merge out={out_dir}` to write the store's manifest")
            return own
        if synced:
            barrier()
        return ConversionResult(journal.merge(), merged=True) if env.rank == 0 else own


def convert_to_store(cfg, source: str, items: list[SourceItem], description: str, make_items: ItemsMaker | None = None) -> Manifest:
    """Standard ending of every `foresight data <source>` command: write `items` into `cfg.out`.

    The frame and store keys (configs/data/frames.yaml) are validated before anything is written.
    The store's recorded config is the composed config minus RUN_KEYS (none changes what is
    written), so rerunning the same command resumes, and a different config is refused instead of
    mixed in. With `make_items` (lists the same items in a worker process), `cfg.workers` processes
    convert items at once (0 = one per core); without, this process converts them. Returns the
    store's manifest, or this rank's journal on a rank that does not merge. A store left without a
    single clip (every item skipped, or no item) is not a finished conversion:
    NothingConvertedError lists each item's reason.
    """
    from omegaconf import OmegaConf

    frames = FrameSettings.from_cfg(cfg)
    config = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    for key in RUN_KEYS:
        config.pop(key, None)
    fmt = ShardFormat(frames.codec, frames.jpeg_quality, frames.clips_per_shard)
    result = convert_items(
        cfg.out, source, config, items, fmt,
        description=description, make_items=make_items, workers=resolve_workers(frames.workers) if make_items else 1,
        overwrite=frames.overwrite,
    )  # fmt: skip
    manifest = result.manifest
    if not result.merged:
        return manifest
    print(
        f"{source}: {manifest.num_clips} clips, {manifest.num_frames} frames in {cfg.out}; "
        f"skipped {len(manifest.skipped)} items and {len(manifest.skipped_files)} files"
    )
    if manifest.num_clips == 0:
        manifest.complete = False  # an empty store is no finished conversion; a rerun retries what may
        manifest.save(Path(cfg.out))
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
