"""OpenDV-YouTube -> clip store.

    foresight data opendv videos=DIR metadata=OpenDV-YouTube.csv out=DIR [split=Train]
    foresight data opendv frames_dir=DIR out=DIR [metadata=...] [frames_dir_fps=10]

Videos: the published metadata (the OpenDV-YouTube Google sheet as CSV, or the JSON that the
official `meta_preprocess.py` makes of it) lists one row per video: its YouTube id (`VideoID`), split
(`Train / Val`) and the seconds to discard at the start and end (intros, outros). Videos are found
anywhere under `videos` as `<id>.mp4|.webm|.mkv` (the official downloader puts them in one folder
per channel). Each video is decoded once from its start with `decode_threads` decoder threads
(data/video_decode.py: only the frames nearest a uniform grid at `fps` are converted and resized),
the trims are cut off, and the kept frames become clips of at most `max_clip_frames`, handed on one
clip at a time so an hour-long video never sits in memory. `workers` videos are converted at once.

Frame folders: every folder under `frames_dir` that holds images (the official extraction writes
`<channel>/<id>/000000000.jpg` ... at 10 fps) becomes one item; images are taken in name order at
`frames_dir_fps` and resampled to `fps`.

The clips are unlabeled: no poses, no commands, no intrinsics.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from configs import build
from data.convert import SourceItem, available_cores, convert_to_store, resolve_workers
from data.errors import BadFileReporter, CorruptFileError, DataError, EmptySourceError, MissingFileError, MissingTableError
from data.frames import load_frames_at_rate
from data.schema import Clip
from data.settings import FrameSettings, check_int, check_real
from data.store.manifest import Manifest
from data.video_decode import FrameChunk, decode_at_rate, probe_video

log = logging.getLogger(__name__)

SOURCE = "opendv"
LICENSE = "YouTube video (OpenDV-YouTube); research use; see the video's own license"
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv")  # what the official downloader (youtube-dl) writes
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MAX_GAP_PERIODS = 1.5  # a jump of more than this many target periods between kept frames ends a clip


def _normalize(name: str) -> str:
    """Column-name key: lower case, letters and digits only ('Train / Val' -> 'trainval')."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class _Column:
    what: str
    aliases: tuple[str, ...]  # normalized names, most specific first


# The published sheet: ID (row number), VideoID, Title, YouTuber, Link, Duration, Train / Val,
# Mini / Full Set, ..., Discarded Length at the Begininning (second) [sic], Discarded Length at the
# Ending (second). The official JSON renames these to videoid, split, start_discard, end_discard.
COLUMNS: dict[str, _Column] = {
    "video_id": _Column("YouTube video id ('VideoID', or 'ID' when no VideoID column)", ("videoid", "youtubeid", "ytid", "id")),
    "split": _Column("split ('Train / Val' or 'Split')", ("trainval", "split")),
    "discard_start_s": _Column(
        "seconds discarded at the start ('Discarded Length at the Begininning (second)' or 'Discard Start Seconds')",
        (
            "discardedlengthatthebegininningsecond",
            "discardedlengthatthebeginningsecond",
            "discardedlengthatthebegininningseconds",
            "discardedlengthatthebeginningseconds",
            "discardstartseconds",
            "discardstartsecond",
            "discardstarts",
            "discardstart",
            "startdiscard",
            "startdiscardseconds",
        ),
    ),
    "discard_end_s": _Column(
        "seconds discarded at the end ('Discarded Length at the Ending (second)' or 'Discard End Seconds')",
        (
            "discardedlengthattheendingsecond",
            "discardedlengthattheendingseconds",
            "discardedlengthattheendsecond",
            "discardedlengthattheendseconds",
            "discardendseconds",
            "discardendsecond",
            "discardends",
            "discardend",
            "enddiscard",
            "enddiscardseconds",
        ),
    ),
    "title": _Column("title", ("title",)),
    "url": _Column("link", ("link", "url")),
    "youtuber": _Column("channel ('YouTuber')", ("youtuber", "channel")),
}
REQUIRED = ("video_id", "discard_start_s", "discard_end_s")


@dataclass(frozen=True)
class VideoMeta:
    """One metadata row. discard_*_s: seconds cut off the start / end of the video [s]."""

    video_id: str
    split: str | None
    discard_start_s: float
    discard_end_s: float
    title: str | None
    url: str | None
    youtuber: str | None
    where: str  # "<metadata file>, row N" for messages

    def __post_init__(self) -> None:
        if not self.video_id:
            raise DataError(f"{self.where}: empty video id")
        for name in ("discard_start_s", "discard_end_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise DataError(f"{self.where}: {name} must be a finite number >= 0, got {value}")

    def provenance(self) -> dict[str, Any]:
        return {
            "youtube_id": self.video_id,
            "title": self.title,
            "url": self.url,
            "youtuber": self.youtuber,
            "split": self.split,
            "discard_start_s": self.discard_start_s,
            "discard_end_s": self.discard_end_s,
        }


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of the metadata file as dicts keyed by the file's own column names."""
    if not path.is_file():
        raise MissingTableError(f"OpenDV metadata file not found: {path}")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):  # tolerate {"videos": [...]}-style wrappers with one list
                lists = [v for v in data.values() if isinstance(v, list)]
                data = lists[0] if len(lists) == 1 else data
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise DataError(f"{path}: expected a JSON list of per-video objects")
            return data
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f))
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise DataError(f"cannot parse OpenDV metadata {path}: {exc}") from exc


def _resolve_columns(path: Path, names: Iterable[str], required: Iterable[str]) -> dict[str, str]:
    """Map each field of COLUMNS to the file's column name; DataError names a missing required one."""
    by_norm: dict[str, str] = {}
    for name in names:
        if name is not None:
            by_norm.setdefault(_normalize(str(name)), str(name))
    found = {}
    for field_name, col in COLUMNS.items():
        for alias in col.aliases:
            if alias in by_norm:
                found[field_name] = by_norm[alias]
                break
    missing = [f for f in required if f not in found]
    if missing:
        wanted = "; ".join(COLUMNS[f].what for f in missing)
        raise DataError(f"OpenDV metadata {path} lacks the required column(s): {wanted}. Its columns: {sorted(by_norm.values())}")
    return found


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text.lower() in ("", "nan", "n/a", "none") else text


def _seconds(value: Any, where: str, column: str) -> float:
    text = _text(value)
    if text is None:
        return 0.0  # a blank trim means nothing to discard
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{where}: column {column!r} holds {value!r}, not a number of seconds") from None


@dataclass(frozen=True)
class MetadataRow:
    """A metadata row whose values may be unusable: `error` says why (the item is then skipped)."""

    video_id: str
    split: str | None
    meta: VideoMeta | None
    error: str | None


def read_metadata(path: str | Path, require_split: bool = False) -> list[MetadataRow]:
    """Rows of an OpenDV-YouTube metadata CSV or JSON, in file order, first row per video id.

    Column names match case-, space- and punctuation-insensitively (see COLUMNS). A missing required
    column raises DataError naming it; a row with a bad value is returned with its `error`.
    """
    path = Path(path)
    rows = _read_rows(path)
    names = list(dict.fromkeys(k for r in rows for k in r)) if rows else _csv_header(path)
    required = REQUIRED + (("split",) if require_split else ())
    cols = _resolve_columns(path, names, required)
    out: list[MetadataRow] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, start=1):
        where = f"{path}, row {n}"
        vid = _text(row.get(cols["video_id"]))
        if vid is None:
            log.warning("%s: no video id; row ignored", where)
            continue
        if vid in seen:
            log.warning("%s: video %s listed again; keeping its first row", where, vid)
            continue
        seen.add(vid)
        split = _text(row.get(cols["split"])) if "split" in cols else None
        try:
            meta = VideoMeta(
                video_id=vid,
                split=split,
                discard_start_s=_seconds(row.get(cols["discard_start_s"]), where, cols["discard_start_s"]),
                discard_end_s=_seconds(row.get(cols["discard_end_s"]), where, cols["discard_end_s"]),
                title=_text(row.get(cols["title"])) if "title" in cols else None,
                url=_text(row.get(cols["url"])) if "url" in cols else None,
                youtuber=_text(row.get(cols["youtuber"])) if "youtuber" in cols else None,
                where=where,
            )
            out.append(MetadataRow(vid, split, meta, None))
        except DataError as exc:
            out.append(MetadataRow(vid, split, None, str(exc)))
    return out


def _csv_header(path: Path) -> list[str]:
    if path.suffix.lower() == ".json":
        return []
    with open(path, newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f), [])


def find_videos(root: str | Path) -> dict[str, list[Path]]:
    """Video files under `root` (any depth) by file stem (the YouTube id), paths sorted."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"OpenDV video folder not found: {root}")
    found: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.suffix.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                found.setdefault(p.stem, []).append(p)
    return found


def _pick_video(candidates: list[Path], youtuber: str | None) -> Path:
    """Prefer the copy in the channel's folder (official layout), then .mp4 over .webm over .mkv."""
    channel_dir = None if youtuber is None else youtuber.replace(" ", "_")
    return min(
        candidates,
        key=lambda p: (p.parent.name != channel_dir, VIDEO_EXTENSIONS.index(p.suffix.lower()), str(p)),
    )


class _ClipAssembler:
    """Turns a stream of kept frames into clips: a new clip at every gap (> MAX_GAP_PERIODS target
    periods) and every `max_frames` frames; runs shorter than `min_frames` are dropped."""

    def __init__(self, video_id: str, fps: float, min_frames: int, max_frames: int, base_provenance: dict[str, Any]) -> None:
        self.video_id, self.fps = video_id, fps
        self.min_frames, self.max_frames = max(1, min_frames), max_frames
        self.max_gap_us = MAX_GAP_PERIODS * 1e6 / fps
        self.base_provenance = base_provenance
        self.frames: list[np.ndarray] = []
        self.times: list[int] = []
        self.indices: list[int] = []
        self.num_clips = 0
        self.dropped_frames = 0

    def add(self, chunk: FrameChunk) -> Iterator[Clip]:
        """Take the frames of `chunk`; yields each clip they complete."""
        for frame, t, i in zip(chunk.frames, chunk.timestamps_us.tolist(), chunk.source_indices.tolist()):
            if self.times and t - self.times[-1] > self.max_gap_us:
                yield from self.close()
            self.frames.append(frame)
            self.times.append(t)
            self.indices.append(i)
            if self.max_frames and len(self.frames) >= self.max_frames:
                yield from self.close()

    def close(self) -> Iterator[Clip]:
        """End the current run of frames: yields it as a clip if it is long enough."""
        if len(self.frames) >= self.min_frames:
            provenance = dict(
                self.base_provenance,
                first_source_frame=self.indices[0],
                last_source_frame=self.indices[-1],
            )
            clip_id = f"{SOURCE}-{self.video_id}-{self.num_clips:04d}"
            self.num_clips += 1
            yield _unlabeled_clip(clip_id, self.frames, self.times, self.fps, provenance)
        else:
            self.dropped_frames += len(self.frames)
        self.frames, self.times, self.indices = [], [], []


def _unlabeled_clip(
    clip_id: str, frames: list[np.ndarray] | np.ndarray, times_us: Iterable[int], fps: float, provenance: dict[str, Any]
) -> Clip:
    return Clip(
        clip_id=clip_id,
        source=SOURCE,
        frames=np.stack(frames) if isinstance(frames, list) else frames,
        frame_timestamps_us=np.asarray(list(times_us), dtype=np.int64),
        fps=float(fps),
        intrinsics=None,
        poses=None,
        commands=None,
        license=LICENSE,
        provenance=dict(provenance, labels="none"),
    )


def load_video_clips(path: Path, meta: VideoMeta, cfg, report_bad_file: BadFileReporter, decode_threads: int = 0) -> Iterator[Clip]:
    """Clips of one video, one at a time: the trims cut off, frames at cfg.fps and cfg.height x
    cfg.width, decoded with `decode_threads` threads (0: as many as the decoder likes)."""
    info = probe_video(path)
    if info.duration_s is None:
        raise CorruptFileError(f"video {path}: neither the header nor the packets tell its length")
    start_s, end_s = meta.discard_start_s, info.duration_s - meta.discard_end_s
    if end_s <= start_s:
        raise EmptySourceError(
            f"video {path} lasts {info.duration_s:.1f} s, not longer than its trims "
            f"({meta.discard_start_s:g} s at the start + {meta.discard_end_s:g} s at the end)"
        )
    provenance = dict(
        meta.provenance(),
        source_file=str(path),
        video_duration_s=round(info.duration_s, 3),
        video_fps=info.fps,
        video_size_hw=list(info.size_hw),
        video_codec=info.codec,
        time_origin="video start",
    )
    assembler = _ClipAssembler(meta.video_id, cfg.fps, cfg.min_clip_frames, cfg.max_clip_frames, provenance)
    frames = decode_at_rate(path, cfg.fps, cfg.height, cfg.width, start_s, end_s, on_bad_file=report_bad_file, threads=decode_threads)
    for chunk in frames:
        yield from assembler.add(chunk)
    yield from assembler.close()
    if not assembler.num_clips:
        raise EmptySourceError(
            f"video {path}: no run of at least {cfg.min_clip_frames} frames at {cfg.fps} fps between "
            f"{start_s:g} s and {end_s:.1f} s"
        )


def _missing_video(video_id: str, root: Path, metadata: Path) -> Callable[[BadFileReporter], list[Clip]]:
    def load(_: BadFileReporter) -> list[Clip]:
        names = ", ".join(video_id + e for e in VIDEO_EXTENSIONS)
        raise MissingFileError(f"video {video_id} is listed in {metadata} but not on disk (no {names} under {root})")

    return load


def _bad_row(error: str) -> Callable[[BadFileReporter], list[Clip]]:
    def load(_: BadFileReporter) -> list[Clip]:
        raise DataError(error)

    return load


def _split_matches(meta_split: str | None, wanted: str | None) -> bool:
    return wanted is None or (meta_split is not None and meta_split.strip().lower() == str(wanted).strip().lower())


def video_items(cfg, decode_threads: int = 0) -> list[SourceItem]:
    """One item per metadata row of the chosen split; rows whose video is not on disk are items
    that fail with MissingFileError (the driver records them as skipped)."""
    videos_root, metadata = Path(cfg.videos), Path(cfg.metadata)
    rows = read_metadata(metadata, require_split=cfg.split is not None)
    on_disk = find_videos(videos_root)
    items = []
    for row in rows:
        if not _split_matches(row.split, cfg.split):
            continue
        if row.meta is None:
            items.append(SourceItem(row.video_id, _bad_row(row.error or "bad metadata row")))
            continue
        candidates = on_disk.get(row.video_id)
        if not candidates:
            items.append(SourceItem(row.video_id, _missing_video(row.video_id, videos_root, metadata)))
            continue
        path = _pick_video(candidates, row.meta.youtuber)
        if len(candidates) > 1:
            log.warning("video %s has %d files; using %s", row.video_id, len(candidates), path)
        items.append(SourceItem(row.video_id, partial(load_video_clips, path, row.meta, cfg, decode_threads=decode_threads)))
    listed = {r.video_id for r in rows}
    unlisted = sorted(set(on_disk) - listed)
    if unlisted:
        log.info("%d video files under %s are not in %s and are ignored (e.g. %s)", len(unlisted), videos_root, metadata, unlisted[0])
    return items


def _frame_folders(root: Path) -> list[tuple[Path, list[Path]]]:
    """(folder, its image files) for every folder under `root` (itself included) holding images."""
    if not root.is_dir():
        raise MissingFileError(f"OpenDV frames folder not found: {root}")
    folders = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        images = [Path(dirpath) / n for n in filenames if Path(n).suffix.lower() in IMAGE_EXTENSIONS and not n.startswith(".")]
        if images:
            folders.append((Path(dirpath), images))
    return folders


def frame_times_us(images: list[Path], fps: float, offset_us: int = 0) -> tuple[list[Path], np.ndarray]:
    """Images in frame order and their timestamps [us]: when every name is a number (the official
    `000000123.jpg`) that number is the frame index, so a missing file leaves a gap; otherwise
    frames are consecutive in name order."""
    if all(p.stem.isdigit() for p in images):
        ordered = sorted(images, key=lambda p: (int(p.stem), p.name))
        index = np.array([int(p.stem) for p in ordered], dtype=np.int64)
        if len(np.unique(index)) != len(index):
            dup = ordered[int(np.nonzero(np.diff(index) == 0)[0][0])]
            raise DataError(f"{dup.parent}: two images share frame number {int(dup.stem)}")
    else:
        ordered = sorted(images, key=lambda p: p.name)
        index = np.arange(len(ordered), dtype=np.int64)
    return ordered, offset_us + np.round(index * (1e6 / fps)).astype(np.int64)


def load_frame_folder_clips(
    folder: Path, images: list[Path], key: str, meta: VideoMeta | None, cfg, report_bad_file: BadFileReporter
) -> list[Clip]:
    """Clips of one folder of pre-extracted frames, resampled from cfg.frames_dir_fps to cfg.fps.

    With a metadata row the times count from the video start (the official extraction's first frame
    is at the start trim); without one, from the first extracted frame.
    """
    offset_us = 0 if meta is None else int(round(meta.discard_start_s * 1e6))
    ordered, ts = frame_times_us(images, cfg.frames_dir_fps, offset_us)
    segments = load_frames_at_rate(
        ts,
        ordered,
        cfg.fps,
        cfg.height,
        cfg.width,
        report_bad_file,
        min_frames=cfg.min_clip_frames,
        max_frames=cfg.max_clip_frames or None,
    )
    if not segments:
        raise EmptySourceError(f"frames folder {folder}: no run of at least {cfg.min_clip_frames} readable frames at {cfg.fps} fps")
    video_id = folder.name
    base = dict(meta.provenance()) if meta is not None else {"youtube_id": video_id}
    base.update(
        frames_folder=str(folder),
        frames_dir_fps=float(cfg.frames_dir_fps),
        time_origin="video start" if meta is not None else "first extracted frame",
    )
    clips = []
    for n, seg in enumerate(segments):
        provenance = dict(
            base,
            first_frame=ordered[int(seg.source_indices[0])].name,
            last_frame=ordered[int(seg.source_indices[-1])].name,
            source_size_hw=list(seg.source_size_hw),
        )
        clips.append(_unlabeled_clip(f"{SOURCE}-{key.replace('/', '_')}-{n:04d}", seg.frames, seg.timestamps_us, cfg.fps, provenance))
    return clips


def frame_folder_items(cfg) -> list[SourceItem]:
    """One item per image folder under cfg.frames_dir, keyed by its path relative to it.

    With cfg.metadata, a folder named like a video id gets that row (provenance, split, time offset);
    with cfg.split set, folders without a row of that split are left out.
    """
    root = Path(cfg.frames_dir)
    by_id: dict[str, VideoMeta] = {}
    if cfg.metadata is not None:
        by_id = {r.video_id: r.meta for r in read_metadata(cfg.metadata, require_split=cfg.split is not None) if r.meta is not None}
    elif cfg.split is not None:
        raise ValueError("opendv: split= with frames_dir= needs metadata= to know each folder's split")
    items = []
    for folder, images in _frame_folders(root):
        key = folder.relative_to(root).as_posix()
        key = root.name if key == "." else key
        meta = by_id.get(folder.name)
        if cfg.split is not None and (meta is None or not _split_matches(meta.split, cfg.split)):
            continue
        items.append(
            SourceItem(key, lambda report, f=folder, im=images, k=key, m=meta: load_frame_folder_clips(f, im, k, m, cfg, report))
        )
    return items


@dataclass(frozen=True)
class OpendvConfig(FrameSettings):
    """`foresight data opendv` (configs/data/opendv.yaml with frames.yaml): exactly one of `videos`
    (with `metadata`) or `frames_dir` (pre-extracted frames at `frames_dir_fps` [Hz]); `split` keeps
    one split of the metadata (None: all); `decode_threads`: decoder threads per video (0: the
    available cores shared among the workers). Checked before any file is read, each bad key named."""

    videos: str | None
    metadata: str | None
    frames_dir: str | None
    frames_dir_fps: float
    out: str
    split: str | None
    decode_threads: int

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "frames_dir_fps", check_real("frames_dir_fps", self.frames_dir_fps, 0.0, low_open=True))
        check_int("decode_threads", self.decode_threads, 0)
        if (self.videos is None) == (self.frames_dir is None):
            raise ValueError("opendv: give exactly one of videos=DIR (with metadata=CSV) or frames_dir=DIR")
        if self.videos is not None and self.metadata is None:
            raise ValueError("opendv: videos= needs metadata= (the OpenDV-YouTube CSV or JSON with the per-video trims)")

    @classmethod
    def from_cfg(cls, cfg: Any) -> OpendvConfig:
        """The settings from the composed `data opendv` config; unknown or missing keys are errors."""
        return build(cls, cfg, "data opendv")


def opendv_items(c: OpendvConfig, decode_threads: int) -> list[SourceItem]:
    """The items of `c`: one per metadata row (videos=) or per image folder (frames_dir=)."""
    return video_items(c, decode_threads) if c.videos is not None else frame_folder_items(c)


def run(cfg) -> Manifest:
    """`foresight data opendv`: convert videos (videos= + metadata=) or frame folders (frames_dir=)."""
    c = OpendvConfig.from_cfg(cfg)
    workers = resolve_workers(c.workers)
    make_items = partial(opendv_items, c, c.decode_threads or max(1, available_cores() // workers))
    items = make_items()
    if not items:
        raise EmptySourceError(f"opendv: nothing to convert (split={c.split}; check videos=/frames_dir= and metadata=)")
    description = "OpenDV-YouTube videos" if c.videos is not None else "OpenDV-YouTube frame folders"
    return convert_to_store(cfg, SOURCE, items, description, make_items=make_items)
