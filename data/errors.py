"""Errors raised while reading raw data (each names the file or table at fault), and the callback
type through which a converter reports a single bad file it leaves out instead of raising."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

BadFileReporter = Callable[[Path, str], None]
"""`report(path, reason)`: `path` was left out of the item being converted because of `reason`."""


class DataError(Exception):
    """Base class: one source item (scene, log, video) could not be converted.

    Converters catch it per item, log the message, count the item as skipped in the manifest,
    and go on with the rest.
    """


class MissingTableError(DataError):
    """A required table (nuScenes JSON, nuPlan SQLite) is absent."""


class MissingFileError(DataError):
    """A file referenced by the metadata is not on disk."""


class CorruptFileError(DataError):
    """A file exists but cannot be decoded (truncated JPEG, broken video, bad shard)."""


class EmptySourceError(DataError):
    """The item holds no usable frames or poses (an empty scene, a video shorter than its trims)."""


class NothingConvertedError(DataError):
    """A conversion ended with no clip in its store: every item was skipped (or there was none).

    skipped: the manifest's {"item", "reason"} records, so callers can show every item's reason.
    """

    def __init__(self, message: str, skipped: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.skipped = skipped
