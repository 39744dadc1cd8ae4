"""Image tokenizers: Foresight's ConvTokenizer (FSQ or EMA-VQ bottleneck) and a LlamaGen-layout VQ loader."""

from world_model.tokenizer.encoding import ImageTokenizer, TokenizerEncoding
from world_model.tokenizer.export import LoadedTokenizer, export_tokenizer, load_image_tokenizer, load_tokenizer
from world_model.tokenizer.llamagen import LlamaGenVQ, LlamaGenVQConfig, load_llamagen_vq
from world_model.tokenizer.model import TOKENIZER_SIZES, ConvTokenizer, TokenizerConfig, TokenizerOutput, tokenizer_config
from world_model.tokenizer.quantizer import CodeUsage, EMAVectorQuantizer, FiniteScalarQuantizer, code_usage

__all__ = [
    "TOKENIZER_SIZES",
    "CodeUsage",
    "ConvTokenizer",
    "EMAVectorQuantizer",
    "FiniteScalarQuantizer",
    "ImageTokenizer",
    "LlamaGenVQ",
    "LlamaGenVQConfig",
    "LoadedTokenizer",
    "TokenizerConfig",
    "TokenizerEncoding",
    "TokenizerOutput",
    "code_usage",
    "export_tokenizer",
    "load_image_tokenizer",
    "load_llamagen_vq",
    "load_tokenizer",
    "tokenizer_config",
]
