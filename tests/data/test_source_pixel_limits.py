"""Image and video headers are checked before decoding (#17): a file that declares a huge frame is
refused as corrupt, naming it, before the decoder allocates anything."""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

import data.image
from data.errors import CorruptFileError
from data.image import read_image_rgb
from data.video_decode import probe_video
from tests.data.test_opendv import make_video


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height RGB pixels and whose data is one empty deflate block."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size, message", [(10000, r"bomb\.png declares 10000x10000 px"), (40000, r"bomb\.png(: .*decompression bomb| declares 40000x40000 px)")])
def test_a_png_declaring_huge_sizes_is_refused_before_decoding(tmp_path, size, message):
    """10000 x 10000 (past our limit, where Pillow only warns) and 40000 x 40000 (Pillow's own
    DecompressionBombError, which used to escape as a traceback; our check when another module has
    lifted Pillow's limit)."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(size, size))
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(CorruptFileError, match=message):
        read_image_rgb(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6 and time.perf_counter() - started < 5


def test_images_and_videos_within_the_limit_decode_and_beyond_it_are_refused(tmp_path, monkeypatch):
    image = tmp_path / "frame.png"
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(image)
    video = make_video(tmp_path / "clip.mp4", n_frames=5)
    assert read_image_rgb(image).shape == (32, 64, 3)
    height, width = probe_video(video).size_hw
    monkeypatch.setattr(data.image, "MAX_SOURCE_PIXELS", min(32 * 64, height * width) - 1)
    with pytest.raises(CorruptFileError, match=r"frame\.png declares 64x32 px"):
        read_image_rgb(image)
    with pytest.raises(CorruptFileError, match=rf"clip\.mp4 declares {width}x{height} px"):
        probe_video(video)
