"""Camera images as they travel in a NeuroNCAP /infer request: base64 text -> (H, W, 3) uint8 RGB.

NeuroNCAP's renderer sends `base64(torch.save(tensor))` of an (H, W, 3) uint8 RGB tensor
(neuro_ncap/components/renderer_api.py `DummyRendererAPI.get_image`; the engine forwards the text
unchanged). That is the format this server is built for; it is read with `torch.load(weights_only=True)`,
PyTorch's restricted unpickler, which refuses any object but tensors and plain containers, so a
crafted payload cannot run code. Two lighter encodings are also accepted, recognised by their magic
bytes: PNG/JPEG (the UniAD reference server's docstring speaks of PNG) and `.npy` (read with
`allow_pickle=False`). Image size is checked against `max_pixels` before any pixel is decoded: from
the PNG/JPEG and .npy headers, and for torch.save from the archive's directory and the loaded tensor's
metadata. A torch.save archive is a zip: its entries must be stored, not compressed (torch.save never
compresses), few and small, so that nothing expands beyond the bytes received; the tensor is a view
whose shape and strides are free, so a 3-byte storage can claim 40000x40000x3 pixels with stride 0:
the shape is checked against the limit and the storage must hold every pixel before anything is copied.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import zipfile

import numpy as np

_TORCH_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) container
_NPY_MAGIC = b"\x93NUMPY"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_ZIP_END = b"PK\x05\x06"  # end of central directory record (22 bytes without a comment)
_ZIP64_LOCATOR = b"PK\x06\x07"  # zip64 end locator (20 bytes), right before the end record
_ZIP64_END = b"PK\x06\x06"  # zip64 end of central directory record (56 bytes), right before the locator
# torch.save of one tensor writes 7 entries (data.pkl, data/0, byteorder, version, ...) and a ~0.5 KB
# directory; its pickle is a few hundred bytes.
_MAX_TORCH_ENTRIES = 16
_MAX_TORCH_DIRECTORY_BYTES = 1 << 16
_MAX_TORCH_PICKLE_BYTES = 1 << 16
ACCEPTED_ENCODINGS = "base64 of torch.save(uint8 (H, W, 3) tensor), of a .npy (H, W, 3) uint8 array, or of a PNG/JPEG"


class ImageDecodeError(ValueError):
    """The payload is not an image in an accepted encoding; the message says why (no field name)."""


def decode_image_b64(text: object, max_pixels: int) -> np.ndarray:
    """base64 text -> (H, W, 3) uint8 RGB, C-contiguous and writeable. Raises ImageDecodeError."""
    if not isinstance(text, str):
        raise ImageDecodeError(f"expected a base64 string, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError(f"not valid base64 ({exc})") from exc
    if raw.startswith(_TORCH_ZIP_MAGIC):
        image = _decode_torch(raw, max_pixels)
    elif raw.startswith(_NPY_MAGIC):
        image = _decode_npy(raw, max_pixels)
    elif raw.startswith(_PNG_MAGIC) or raw.startswith(_JPEG_MAGIC):
        image = _decode_png_jpeg(raw, max_pixels)
    else:
        raise ImageDecodeError(f"unrecognised image encoding (first bytes {raw[:8]!r}); expected {ACCEPTED_ENCODINGS}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageDecodeError(f"expected a (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageDecodeError(f"image is empty, shape {image.shape}")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageDecodeError(f"image of {image.shape[1]}x{image.shape[0]} px exceeds the limit of {max_pixels} px")
    return np.array(image, dtype=np.uint8, order="C", copy=True)


def _decode_torch(raw: bytes, max_pixels: int) -> np.ndarray:
    import pickle

    import torch

    _check_torch_archive(raw)
    try:
        tensor = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError, KeyError) as exc:
        # Keep the first line only: torch's message for refused globals runs to a page of advice.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageDecodeError(f"torch.save payload could not be read safely: {first_line[:200]}") from exc
    if not isinstance(tensor, torch.Tensor):
        raise ImageDecodeError(f"torch.save payload holds a {type(tensor).__name__}, not a tensor")
    if tensor.dtype != torch.uint8:
        raise ImageDecodeError(f"expected a uint8 tensor, got {tensor.dtype}")
    # Everything below reads metadata only: the view is copied once it is known to be small and backed.
    shape, strides = tuple(tensor.shape), tuple(tensor.stride())
    if len(shape) != 3 or shape[2] != 3:
        raise ImageDecodeError(f"expected a (H, W, 3) uint8 RGB image, got shape {shape} dtype {tensor.dtype}")
    height, width = shape[0], shape[1]
    if height < 1 or width < 1:
        raise ImageDecodeError(f"image is empty, shape {shape}")
    if height * width > max_pixels:
        raise ImageDecodeError(f"image of {width}x{height} px exceeds the limit of {max_pixels} px")
    stored = tensor.untyped_storage().nbytes()
    offset = tensor.storage_offset()
    last = offset + sum((n - 1) * step for n, step in zip(shape, strides))
    if min(strides) < 0 or offset < 0 or last >= stored:
        raise ImageDecodeError(f"tensor view (offset {offset}, strides {strides}) reaches outside its {stored}-byte storage")
    if height * width * 3 > stored - offset:
        raise ImageDecodeError(
            f"tensor storage holds {stored} bytes (from offset {offset}) but a {width}x{height} image needs "
            f"{height * width * 3}: a view that repeats bytes is refused"
        )
    return tensor.detach().contiguous().numpy()


def _check_torch_archive(raw: bytes) -> None:
    """Refuse a torch.save zip archive that could expand beyond `raw`: compressed entries, more than a
    few entries, a large directory or pickle, or entries that overlap. The directory's size and count
    are read from the end records (zip and zip64, as `zipfile` reads them) before `zipfile` parses it."""
    if len(raw) < 22 or raw[-22:-18] != _ZIP_END or raw[-2:] != b"\x00\x00":
        raise ImageDecodeError("torch.save payload is not a zip archive without a comment (as torch.save writes it)")
    entries, directory_bytes = struct.unpack_from("<HI", raw, len(raw) - 22 + 10)
    if len(raw) >= 22 + 20 + 56 and raw[-42:-38] == _ZIP64_LOCATOR:
        start = len(raw) - 22 - 20 - 56
        if raw[start : start + 4] == _ZIP64_END:
            entries, directory_bytes = struct.unpack_from("<QQ", raw, start + 32)
    if entries > _MAX_TORCH_ENTRIES or directory_bytes > _MAX_TORCH_DIRECTORY_BYTES:
        raise ImageDecodeError(
            f"torch.save archive has {entries} entries in a {directory_bytes}-byte directory; at most "
            f"{_MAX_TORCH_ENTRIES} entries and {_MAX_TORCH_DIRECTORY_BYTES} bytes are accepted"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise ImageDecodeError(f"torch.save payload is not a readable zip archive: {exc}") from exc
    if len(infos) > _MAX_TORCH_ENTRIES:
        raise ImageDecodeError(f"torch.save archive has {len(infos)} entries; at most {_MAX_TORCH_ENTRIES} are accepted")
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise ImageDecodeError(f"torch.save archive entry {info.filename!r} is compressed; torch.save stores entries uncompressed")
        if info.filename.endswith("/data.pkl") and info.file_size > _MAX_TORCH_PICKLE_BYTES:
            raise ImageDecodeError(f"torch.save archive pickle of {info.file_size} bytes exceeds {_MAX_TORCH_PICKLE_BYTES}")
        total += info.file_size
    if total > len(raw):
        raise ImageDecodeError(f"torch.save archive entries add up to {total} bytes, more than the {len(raw)} received")


def _decode_npy(raw: bytes, max_pixels: int) -> np.ndarray:
    fp = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"format version {version} is not supported (1.0 and 2.0 are)")
    except ValueError as exc:
        raise ImageDecodeError(f".npy header unreadable: {exc}") from exc
    if dtype != np.uint8 or len(shape) != 3 or shape[2] != 3:
        raise ImageDecodeError(f"expected a (H, W, 3) uint8 .npy array, got shape {shape} dtype {dtype}")
    if shape[0] * shape[1] > max_pixels:
        raise ImageDecodeError(f"image of {shape[1]}x{shape[0]} px exceeds the limit of {max_pixels} px")
    # Check the byte count before numpy allocates anything from a header we have not verified.
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - fp.tell() != expected:
        raise ImageDecodeError(f".npy data holds {len(raw) - fp.tell()} bytes, its header promises {expected}")
    return np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)


def _decode_png_jpeg(raw: bytes, max_pixels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > max_pixels:
                raise ImageDecodeError(f"image of {img.width}x{img.height} px exceeds the limit of {max_pixels} px")
            img.load()
            return np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, ImageDecodeError):
            raise
        raise ImageDecodeError(f"PNG/JPEG payload could not be decoded: {exc}") from exc
