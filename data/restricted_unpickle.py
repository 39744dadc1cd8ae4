"""Reading pickled values from data files without ever running code from them.

Some dataset formats store small values as pickles (nuPlan's `camera.intrinsic`, `translation`,
`rotation` and `distortion` columns are pickled Python lists). A pickle can name any importable
callable and call it while loading, so plain `pickle.loads` on downloaded data is arbitrary code
execution. `restricted_loads` resolves no class or function at all: only the built-in containers and
scalars that pickle builds by itself (lists, tuples, dicts, floats, ints, bools, strings, None) can
come out, and anything else is refused before it is called.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from data.errors import DataError

MAX_PICKLE_BYTES = 1 << 20
_PLAIN_TYPES = (list, tuple, dict, float, int, bool, str, type(None))


class UnsafePickleError(DataError):
    """A pickled value asks for a class or function, or decodes to something that is not plain data."""


class _NoGlobalsUnpickler(pickle.Unpickler):
    """An Unpickler that refuses every global lookup (classes, functions, copyreg extensions)."""

    def __init__(self, file: io.BytesIO, what: str) -> None:
        super().__init__(file)
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        raise UnsafePickleError(
            f"{self._what}: refusing to unpickle: it references {module}.{name}; only plain lists, "
            f"tuples, dicts and numbers are accepted"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._what}: refusing to unpickle: it uses a persistent id")


def restricted_loads(blob: bytes, what: str, max_bytes: int = MAX_PICKLE_BYTES) -> Any:
    """Unpickle `blob` (at most `max_bytes`) into plain Python data; `what` names it in errors.

    Raises UnsafePickleError if the pickle references any class or function, or yields anything but
    lists, tuples, dicts, floats, ints, bools, strings and None; DataError if it is not a pickle.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise DataError(f"{what}: expected a pickled blob, got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) > max_bytes:
        raise DataError(f"{what}: pickled blob of {len(blob)} bytes exceeds the {max_bytes}-byte limit")
    try:
        value = _NoGlobalsUnpickler(io.BytesIO(blob), what).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # a malformed pickle can raise nearly anything from the C unpickler
        raise DataError(f"{what}: not a readable pickle: {type(exc).__name__}: {exc}") from exc
    _check_plain(value, what)
    return value


def _check_plain(value: Any, what: str) -> None:
    """Raise unless `value` is built only of the plain types (cycles allowed, each node visited once)."""
    seen: set[int] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) not in _PLAIN_TYPES:
            raise UnsafePickleError(f"{what}: unpickled a {type(v).__name__}; only plain data is accepted")
        if isinstance(v, (list, tuple, dict)):
            if id(v) in seen:
                continue
            seen.add(id(v))
            stack.extend(v.keys() if isinstance(v, dict) else ())
            stack.extend(v.values() if isinstance(v, dict) else v)
