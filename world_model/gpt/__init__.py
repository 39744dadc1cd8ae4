"""Video GPT: next-token model over image-token grids, its generation, and its training module."""

from world_model.gpt.config import GPT_SIZES, GPTConfig, GPTSize, gpt_config
from world_model.gpt.generate import WindowEvent, generate_frame, rollout
from world_model.gpt.kv_cache import KVCache
from world_model.gpt.model import GPT, IGNORE_INDEX, GPTOutput
from world_model.gpt.sampling import SamplingConfig, sample_next_token

__all__ = [
    "GPT",
    "GPT_SIZES",
    "GPTConfig",
    "GPTOutput",
    "GPTSize",
    "IGNORE_INDEX",
    "KVCache",
    "SamplingConfig",
    "WindowEvent",
    "generate_frame",
    "gpt_config",
    "rollout",
    "sample_next_token",
]
