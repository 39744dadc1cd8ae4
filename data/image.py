"""Decoding, resizing and encoding of camera frames.

Source images are decoded with Pillow in strict mode (a truncated JPEG is an error, not a grey
half-image); resizing and encoding use OpenCV.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from data.errors import CorruptFileError, MissingFileError

ImageFile.LOAD_TRUNCATED_IMAGES = False
# Largest image or video frame read from a dataset [px] (8K video is 33 Mpx): checked from the header,
# before the decoder allocates anything, so a crafted header cannot ask for gigabytes.
MAX_SOURCE_PIXELS = 64 * 1024 * 1024
FRAME_CODECS = ("jpeg", "png", "raw")


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB; MissingFileError / CorruptFileError name the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            check_source_pixels(img.width, img.height, f"image {path}")
            img.load()
            return np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, CorruptFileError):
            raise
        raise CorruptFileError(f"corrupt or truncated image {path}: {exc}") from exc


def check_source_pixels(width: int, height: int, what: str) -> None:
    """CorruptFileError unless a header's width x height is positive and at most MAX_SOURCE_PIXELS."""
    if width < 1 or height < 1 or width * height > MAX_SOURCE_PIXELS:
        raise CorruptFileError(f"{what} declares {width}x{height} px, outside 1..{MAX_SOURCE_PIXELS} px: refused before decoding")


def resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 to (height, width, 3) without cropping (area filter when shrinking)."""
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    shrink = height < image.shape[0] or width < image.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def encode_frame(frame: np.ndarray, codec: str, jpeg_quality: int = 95) -> bytes:
    """Encode one (H, W, 3) uint8 RGB frame as JPEG or PNG bytes."""
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    if codec == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    elif codec == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        raise ValueError(f"unknown frame codec {codec!r}; expected one of {FRAME_CODECS}")
    if not ok:
        raise RuntimeError(f"OpenCV failed to encode a {frame.shape} frame as {codec}")
    return buf.tobytes()


def decode_frame(data: bytes | np.ndarray, what: str = "frame") -> np.ndarray:
    """Decode JPEG/PNG bytes to (H, W, 3) uint8 RGB."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise CorruptFileError(f"cannot decode {what}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except FileNotFoundError as exc:
        raise MissingFileError(f"image file not found: {path}") from exc
    except (OSError, UnidentifiedImageError) as exc:
        raise CorruptFileError(f"corrupt image {path}: {exc}") from exc

