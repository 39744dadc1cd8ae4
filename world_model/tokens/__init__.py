"""Token store: image tokens of every clip of a clip store, cached as (T, h, w) uint16 .npy files (and
the clip's (T, 4) float32 ego poses, where it has them) + manifest."""

from world_model.tokens.manifest import ClipTokensRecord, TokenStoreManifest
from world_model.tokens.reader import TokenStore
from world_model.tokens.writer import TokenStoreWriter

__all__ = ["ClipTokensRecord", "TokenStore", "TokenStoreManifest", "TokenStoreWriter"]
