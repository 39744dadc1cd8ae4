"""On-disk clip store: safetensors shards of clips plus a checksummed JSON manifest."""

from data.store.manifest import Manifest
from data.store.reader import ClipStore
from data.store.writer import ClipStoreWriter

__all__ = ["ClipStore", "ClipStoreWriter", "Manifest"]
