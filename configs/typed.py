"""Typed settings from composed configs: a frozen dataclass built from a mapping, key by key.

Unknown keys and missing keys are errors that name the config section (`planner.train: unknown
keys [...]`), so a typo on the command line never silently falls back to something else.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from configs.compose import plain

T = TypeVar("T")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build(cls: type[T], values: Mapping[str, Any] | None, what: str) -> T:
    """cls(**values) after refusing unknown keys and naming missing ones; nested sections whose field
    is itself a dataclass are built the same way, and lists become tuples where the field is a tuple."""
    values = dict(plain(values) or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown}; known keys are {sorted(fields)}")
    missing = sorted(
        name for name, f in fields.items()
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ValueError(f"{what}: missing keys {missing}")
    hints = _hints(cls)
    for name, value in values.items():
        hint = hints.get(name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            values[name] = build(hint, value, f"{what}.{name}")
        elif isinstance(value, list) and typing.get_origin(hint) is tuple:
            values[name] = tuple(value)
    return cls(**values)
