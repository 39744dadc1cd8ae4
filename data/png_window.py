"""Read a window of an 8-bit grayscale PNG map mask without decoding the whole image.

The nuScenes semantic-prior map rasters are ~32k x 37k pixels: a full decode (PIL, the devkit's
MapMask) takes ~20 s and ~4 GB, yet a clip needs only a patch a few hundred metres across. This
reader walks the chunks itself, inflates IDAT data only down to the window's last row, and undoes
row filters only for the rows it must. It handles non-interlaced 8-bit grayscale images with the
None/Sub/Up row filters; any other PNG raises UnsupportedPngError, so callers can fall back to a
full decode.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from data.errors import CorruptFileError


class UnsupportedPngError(Exception):
    """The PNG is valid but not 8-bit grayscale, non-interlaced, with None/Sub/Up row filters."""


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_INFLATE_STEP = 1 << 24  # bytes of decompressed rows handled at a time


def _png_chunks(f, path: Path) -> Iterator[tuple[bytes, bytes]]:
    """(type, data) of each chunk of the open PNG file `f`, up to IEND; CRCs are not checked."""
    if f.read(8) != _PNG_SIGNATURE:
        raise CorruptFileError(f"{path} is not a PNG file")
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptFileError(f"PNG {path} ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", head)
        data = f.read(length)
        if len(data) < length or len(f.read(4)) < 4:
            raise CorruptFileError(f"PNG {path} is truncated inside a {kind!r} chunk")
        yield kind, data
        if kind == b"IEND":
            return


def png_size(path: str | Path) -> tuple[int, int]:
    """(height, width) in pixels from the PNG header."""
    path = Path(path)
    with open(path, "rb") as f:
        kind, data = next(_png_chunks(f, path))
    if kind != b"IHDR":
        raise CorruptFileError(f"PNG {path} does not start with IHDR")
    width, height = struct.unpack(">II", data[:8])
    return height, width


def read_png_gray8_window(path: str | Path, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Pixels [r0, r1) x [c0, c1) of an 8-bit grayscale PNG as (r1 - r0, c1 - c0) uint8; 0 outside the image.

    Decodes the image only down to row r1 and reconstructs only the rows it must. Raises
    UnsupportedPngError for other PNG kinds and for Average/Paeth row filters; CorruptFileError for
    a broken file.
    """
    path = Path(path)
    (r0, r1), (c0, c1) = rows, cols
    if r1 <= r0 or c1 <= c0:
        raise ValueError(f"empty PNG window rows {rows} cols {cols}")
    out = np.zeros((r1 - r0, c1 - c0), np.uint8)
    with open(path, "rb") as f:
        chunks = _png_chunks(f, path)
        kind, ihdr = next(chunks)
        if kind != b"IHDR":
            raise CorruptFileError(f"PNG {path} does not start with IHDR")
        width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
        if (depth, color, interlace) != (8, 0, 0):
            raise UnsupportedPngError(f"{path}: bit depth {depth}, colour type {color}, interlace {interlace}")
        last = min(r1, height)  # rows [0, last) must be decoded
        if last <= max(r0, 0) or c1 <= 0 or c0 >= width:
            return out
        stride = width + 1
        inflate = zlib.decompressobj()
        pending = bytearray()
        prev = np.zeros(width, np.uint8)  # the row above row 0 is zeros (PNG spec)
        row = 0
        try:
            for kind, data in chunks:
                if kind != b"IDAT":
                    continue
                while row < last:
                    inflated = inflate.decompress(data, _INFLATE_STEP)
                    data = inflate.unconsumed_tail
                    pending += inflated
                    n = min(len(pending) // stride, last - row)
                    if n:
                        block = np.frombuffer(bytes(pending[: n * stride]), np.uint8).reshape(n, stride)
                        del pending[: n * stride]
                        prev = _unfilter_rows(block, row, prev, (r0, r1), (c0, c1), out, path)
                        row += n
                    if not data and len(inflated) < _INFLATE_STEP:
                        break  # this chunk is used up
                if row >= last:
                    return out
        except zlib.error as exc:
            raise CorruptFileError(f"corrupt PNG {path}: {exc}") from exc
    raise CorruptFileError(f"PNG {path} holds {row} of its {height} rows")


def _unfilter_rows(
    block: np.ndarray,
    row0: int,
    prev: np.ndarray,
    rows: tuple[int, int],
    cols: tuple[int, int],
    out: np.ndarray,
    path: Path,
) -> np.ndarray:
    """Undo PNG filters of `block` (n, 1 + W) = image rows row0.. ; copy window rows into `out`;
    returns the last reconstructed row. Rows outside the window are rebuilt only when a later row
    of the block depends on them (Up filter) or to hand on the last row."""
    filters, data = block[:, 0], block[:, 1:]
    if np.any(filters > 2):
        bad = int(filters[filters > 2][0])
        raise UnsupportedPngError(f"{path}: row filter {bad} (Average/Paeth) is not handled by the windowed reader")
    (r0, r1), (c0, c1) = rows, cols
    n, width = data.shape
    lo, hi = max(c0, 0), min(c1, width)
    needed = np.zeros(n, bool)
    needed[max(r0 - row0, 0) : max(min(r1 - row0, n), 0)] = True
    needed[-1] = True
    up_rows = np.nonzero(filters == 2)[0]
    if len(up_rows):
        # An Up row needs its predecessor, which may itself be an Up row: rebuild from the first one.
        needed[max(up_rows[0] - 1, 0) :] = True
    recon = {}
    last = prev
    for i in np.nonzero(needed)[0]:
        f = filters[i]
        if f == 0:
            cur = data[i]
        elif f == 1:
            cur = np.cumsum(data[i], dtype=np.uint8)
        else:
            above = last if i == 0 else recon[i - 1]
            cur = data[i] + above
        recon[i] = cur
        last = cur
        r = row0 + i
        if r0 <= r < r1 and lo < hi:
            out[r - r0, lo - c0 : hi - c0] = cur[lo:hi]
    return last
