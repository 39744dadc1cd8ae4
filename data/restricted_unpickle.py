"""Reading pickled values from data files without ever running code from them.

Some dataset formats store small values as pickles (nuPlan's `camera.intrinsic`, `translation`,
`rotation` and `distortion` columns are pickled Python lists). A pickle can name any importable
callable and call it while loading, so plain `pickle.loads` on downloaded data is arbitrary code
execution. `restricted_loads` resolves no class or function at all: only the built-in containers and
scalars that pickle builds by itself (lists, tuples, dicts, floats, ints, bools, strings, None) can
come out, and anything else is refused before it is called.

Stopping code does not stop size: a few hundred bytes of pickle can nest shared references so that
one list is reachable 2**35 times, which a later `np.asarray` expands in full. So the value is also
walked as it would be expanded, every occurrence of a shared reference counted again, and refused
beyond `max_elements` nodes or `max_depth` levels; the walk stops at the first excess, so it costs at
most `max_elements` steps whatever the pickle holds.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from data.errors import DataError

MAX_PICKLE_BYTES = 1 << 20
MAX_ELEMENTS = 10_000  # containers, keys and scalars, counted with multiplicity (nuPlan's largest column: 9 numbers)
MAX_DEPTH = 32  # nesting levels of containers
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


def restricted_loads(blob: bytes, what: str, max_bytes: int = MAX_PICKLE_BYTES, max_elements: int = MAX_ELEMENTS, max_depth: int = MAX_DEPTH) -> Any:
    """Unpickle `blob` (at most `max_bytes`) into plain Python data; `what` names it in errors.

    Raises UnsafePickleError if the pickle references any class or function, yields anything but
    lists, tuples, dicts, floats, ints, bools, strings and None, or would expand to more than
    `max_elements` nodes (shared references counted each time they occur) or nest deeper than
    `max_depth`; DataError if it is not a pickle.
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
    _check_plain(value, what, max_elements, max_depth)
    return value


def _check_plain(value: Any, what: str, max_elements: int, max_depth: int) -> None:
    """Raise unless `value` is built only of the plain types, with at most `max_elements` nodes counted
    as the value would be expanded (no `seen` set: a shared or cyclic reference counts each time) and
    at most `max_depth` levels of containers. Children are counted before they are pushed, so the
    stack never holds more than `max_elements` entries."""
    count = 1
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if type(v) not in _PLAIN_TYPES:
            raise UnsafePickleError(f"{what}: unpickled a {type(v).__name__}; only plain data is accepted")
        if not isinstance(v, (list, tuple, dict)):
            continue
        if depth >= max_depth:
            raise UnsafePickleError(f"{what}: refusing to unpickle: nested deeper than {max_depth} levels")
        count += 2 * len(v) if isinstance(v, dict) else len(v)
        if count > max_elements:
            raise UnsafePickleError(
                f"{what}: refusing to unpickle: it expands to more than {max_elements} elements (shared references counted each time they occur)"
            )
        if isinstance(v, dict):
            stack.extend((key, depth + 1) for key in v)
            stack.extend((item, depth + 1) for item in v.values())
        else:
            stack.extend((item, depth + 1) for item in v)
