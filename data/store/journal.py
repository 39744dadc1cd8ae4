"""The journal of a conversion: which items each rank has finished, and the merge into manifest.json.

Each rank of a conversion (one process, or one of several under torchrun / SLURM, see data/ranks.py)
converts the items it owns into item shards (data/store/item_shards.py) and records each finished
item, with its shards, its skip reason or its left-out files, in its journal: `manifest.json` when
it is the only rank, else `manifest.part-<rank>.json`. Journals are Manifests, written atomically
after every item, so a killed rank loses nothing it had finished. The merge unions every journal
into `manifest.json`, listing items in conversion order: the same file whichever rank, worker or
run converted each item.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from data.ranks import PART_GLOB, DistEnv, part_name
from data.store.item_shards import item_digest, shard_digest
from data.store.manifest import MANIFEST_NAME, Manifest, ShardRecord
from data.store.writer import _code_version

log = logging.getLogger(__name__)
_PART = re.compile(r"^\.?manifest\.part-(\d+)\.json(\..*\.tmp)?$")
_MAIN_TEMP = re.compile(r"^\.manifest\.json\..*\.tmp$")
_OLD_SHARD = re.compile(r"^\.?shard-\d+\.safetensors(\..*\.tmp)?$")  # ClipStoreWriter's numbered shards


@dataclass(frozen=True)
class ItemResult:
    """What converting one item gave: its shards, or why it was skipped (`retry`: the cause may go
    away, e.g. a file not downloaded yet, so a later run tries again); `bad_files` are the files
    left out of it ({"item", "file", "reason"}), in the order they were met."""

    key: str
    shards: tuple[ShardRecord, ...] = ()
    skip_reason: str | None = None
    retry: bool = False
    bad_files: tuple[dict[str, str], ...] = ()

    def __post_init__(self) -> None:
        if bool(self.shards) == (self.skip_reason is not None):
            raise ValueError(f"item {self.key}: a result has either shards or a skip reason")

    @property
    def done(self) -> bool:
        """Nothing left to do for the item (converted, or skipped for a reason that stays)."""
        return bool(self.shards) or not self.retry


def _journal_paths(out_dir: Path) -> list[Path]:
    """manifest.json, then the rank journals oldest first (a later journal knows more of an item)."""
    main = out_dir / MANIFEST_NAME
    parts = sorted(out_dir.glob(PART_GLOB), key=lambda p: (p.stat().st_mtime_ns, p.name))
    return ([main] if main.is_file() else []) + parts


def _results_of(m: Manifest, where: Path) -> dict[str, ItemResult]:
    """The item results a journal lists whose shard files are on disk with their recorded sizes."""
    if m.shards and not m.items:
        raise ValueError(f"{where} was written by an older converter (items share shards); pass overwrite=true to convert again")
    shards: dict[str, list[ShardRecord]] = {}
    for s in m.shards:
        if len(s.items) != 1:
            raise ValueError(f"{where}: shard {s.file} lists items {s.items}; a conversion shard holds one item")
        shards.setdefault(s.items[0], []).append(s)
    bad: dict[str, list[dict[str, str]]] = {}
    for f in m.skipped_files:
        bad.setdefault(f["item"], []).append(f)
    out = {}
    for key, recs in shards.items():
        files = [where.parent / s.file for s in recs]
        if all(f.is_file() and f.stat().st_size == s.bytes for f, s in zip(files, recs)):
            out[key] = ItemResult(key, tuple(recs), bad_files=tuple(bad.get(key, ())))
        else:
            log.warning("%s: a shard of item %s is missing or truncated; the item will be converted again", where, key)
    for s in m.skipped:
        if s["item"] not in out:
            out[s["item"]] = ItemResult(s["item"], skip_reason=s["reason"], retry=bool(s.get("retry")), bad_files=tuple(bad.get(s["item"], ())))
    return out


class JournalSet:
    """The journals in a directory, read against `header` (source, config, codec, item list)."""

    def __init__(self, out_dir: Path, header: Manifest) -> None:
        self.out_dir, self.header = out_dir, header
        self.position = {key: i for i, key in enumerate(header.items)}
        if len(self.position) != len(header.items):
            dup = next(k for i, k in enumerate(header.items) if self.position[k] != i)
            raise ValueError(f"item key {dup!r} appears twice; every item of a conversion needs its own key")

    def load(self) -> dict[str, ItemResult]:
        """Every item result the journals hold (a later journal's wins, shards on disk beat a skip);
        a journal made with another source, codec or config is refused."""
        results: dict[str, ItemResult] = {}
        h = self.header
        for path in _journal_paths(self.out_dir):
            m = Manifest.load(path.parent, path.name)
            if (m.source, m.config, m.codec) != (h.source, h.config, h.codec):
                raise ValueError(
                    f"{self.out_dir} already holds a {m.source} store made with a different configuration ({path.name}); "
                    "pass overwrite=true or choose another output directory"
                )
            for key, r in _results_of(m, path).items():
                if key not in self.position:
                    raise ValueError(
                        f"{path} lists item {key!r}, which this conversion does not have (its inputs changed); "
                        "pass overwrite=true or choose another output directory"
                    )
                if r.shards or not results.get(key, r).shards:
                    results[key] = r
        return results

    def snapshot(self, results: dict[str, ItemResult], complete: bool) -> Manifest:
        """The manifest listing `results` in conversion order."""
        ordered = sorted(results.values(), key=lambda r: self.position[r.key])
        return replace(
            self.header,
            shards=[s for r in ordered for s in r.shards],
            skipped=[{"item": r.key, "reason": r.skip_reason, **({"retry": True} if r.retry else {})} for r in ordered if r.skip_reason],
            skipped_files=[dict(f) for r in ordered for f in r.bad_files],
            complete=complete,
        )

    def merge(self, own: dict[str, ItemResult] | None = None) -> Manifest:
        """Union every journal (and `own`, results not saved yet) into manifest.json, complete when
        every item is done; removes the rank journals merged."""
        parts = sorted(self.out_dir.glob(PART_GLOB))
        results = self.load()
        results.update(own or {})
        manifest = self.snapshot(results, complete=all(k in results and results[k].done for k in self.position))
        manifest.save(self.out_dir)
        for p in parts:
            p.unlink(missing_ok=True)
        return manifest


class ConversionJournal:
    """One rank's journal of converting `items` (keys, in conversion order) into `out_dir`.

    Resumes what earlier runs (of any number of ranks) finished. `overwrite` starts over instead:
    this rank removes what it is responsible for (its items' shards and its journal; rank 0 also
    manifest.json and files of no current item or rank). Only the owner of a file ever removes
    it, so ranks never race, launched together or as separate jobs.
    """

    def __init__(
        self, out_dir: str | Path, source: str, config: dict[str, Any], codec: str, items: list[str], env: DistEnv, overwrite: bool
    ) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        config = json.loads(json.dumps(config, default=str))
        header = Manifest(source=source, config=config, codec=codec, code_version=_code_version(), items=list(items))
        self.journals = JournalSet(out_dir, header)
        self.out_dir, self.env = out_dir, env
        self.by_digest = {item_digest(key): key for key in items}
        self.done: dict[str, ItemResult] = {} if overwrite else self.journals.load()
        self.own: dict[str, ItemResult] = {k: r for k, r in self.done.items() if self.owns(k)}
        self._remove_files(overwrite, keep={s.file for r in self.own.values() for s in r.shards})

    def owns(self, key: str) -> bool:
        return self.env.owns(self.journals.position[key])

    def is_done(self, key: str) -> bool:
        return key in self.done and self.done[key].done

    def _remove_files(self, overwrite: bool, keep: set[str]) -> None:
        """Remove the files this rank is responsible for that no finished item of it lists: its item
        shards and their temporary files, its journal's temporary files (and, on overwrite, its
        journal); rank 0 also leftovers of no current item or rank."""
        rank0 = self.env.rank == 0
        for p in list(self.out_dir.iterdir()):
            name = p.name
            digest, part = shard_digest(name), _PART.match(name)
            if digest is not None:
                key = self.by_digest.get(digest)
                mine, stale = (self.owns(key) if key is not None else rank0), name not in keep
            elif part is not None:
                rank = int(part.group(1))
                mine = rank == self.env.rank or (rank0 and rank >= self.env.world_size)
                stale = overwrite or part.group(2) is not None
            elif name == MANIFEST_NAME or _MAIN_TEMP.match(name):
                mine, stale = rank0, overwrite or name != MANIFEST_NAME
            elif _OLD_SHARD.match(name):
                mine, stale = rank0, overwrite
            else:
                continue
            if mine and stale:
                log.warning("%s: removing %s (left by an interrupted or overwritten run)", self.out_dir, name)
                p.unlink(missing_ok=True)

    def record(self, result: ItemResult) -> None:
        """Journal one finished item of this rank (saved at once)."""
        if not self.owns(result.key):
            raise ValueError(f"item {result.key} is not rank {self.env.rank}'s")
        self.done[result.key] = result
        self.own[result.key] = result
        self.save()

    def save(self) -> None:
        """This rank's journal: manifest.json when it is the only rank."""
        name = MANIFEST_NAME if self.env.world_size == 1 else part_name(self.env.rank)
        self.journals.snapshot(self.own, complete=False).save(self.out_dir, name)

    def merge(self) -> Manifest:
        """manifest.json from every journal (the last step, once every rank has saved its own)."""
        return self.journals.merge(self.own)


def merge_store(out_dir: str | Path) -> Manifest:
    """Merge the journals of ranks that ran as separate jobs (`foresight data merge`). The item list
    and configuration come from the newest journal; the rank journals must all share its item list."""
    out_dir = Path(out_dir)
    paths = _journal_paths(out_dir) if out_dir.is_dir() else []
    if not paths:
        raise FileNotFoundError(f"{out_dir} holds no conversion journal (manifest.json or {PART_GLOB})")
    journals = [(p, Manifest.load(p.parent, p.name)) for p in paths]
    newest = journals[-1][1]
    if not newest.items:
        raise ValueError(f"{paths[-1]} lists no items: {out_dir} was not written by `foresight data <source>`")
    for p, m in journals:
        if p.name != MANIFEST_NAME and m.items != newest.items:
            raise ValueError(f"{p} was written for another list of items than {paths[-1].name} (the inputs changed between ranks)")
    header = replace(newest, shards=[], skipped=[], skipped_files=[], complete=False)
    return JournalSet(out_dir, header).merge()
