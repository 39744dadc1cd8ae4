"""A broken tokenizer JSON, or a path to another kind of export, is a named error, not a TypeError or
a state_dict RuntimeError (issue #17, item 10). Exports are written in the real format in tmp_path."""

from __future__ import annotations

import json

import pytest

from foresight.cli import main
from world_model.artifact import WorldModelMeta, export_world_model
from world_model.gpt.config import GPTConfig
from world_model.gpt.model import GPT
from world_model.tokenizer import ConvTokenizer, export_tokenizer, load_tokenizer, tokenizer_config
from world_model.tokenizer.model import TokenizerConfig


@pytest.fixture
def exported(tmp_path):
    return export_tokenizer(ConvTokenizer(tokenizer_config("tiny", base_channels=8)), tmp_path / "tok")


def _edit_config(weights, **changes):
    path = weights.with_suffix(".json")
    meta = json.loads(path.read_text())
    meta["config"].update(changes)
    path.write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize(
    "key, value",
    [("base_channels", "eight"), ("base_channels", 8.5), ("base_channels", True), ("num_res_blocks", None),
     ("channel_mult", [1, "two", 2]), ("channel_mult", 4), ("fsq_levels", None), ("fsq_levels", [8, 5.5]),
     ("vq_decay", float("nan")), ("vq_commitment", "high"), ("fsq_prequant_bound", float("inf")), ("quantizer", 3),
     ("patch_size", 0), ("patch_size", 2.0)],
)  # fmt: skip
def test_a_bad_value_in_the_tokenizer_json_names_the_key_and_the_file(exported, key, value):
    config = _edit_config(exported, **{key: value})
    with pytest.raises(ValueError, match=rf"{config}.*\b{key}\b"):
        load_tokenizer(exported)


def test_the_reported_case_exits_with_a_message_not_a_traceback(exported, tmp_path, capsys):
    config = _edit_config(exported, base_channels="eight")
    args = ["data", "tokenize", f"clips={tmp_path / 'clips'}", f"tokenizer={exported.parent}", f"out={tmp_path / 'tokens'}"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "base_channels" in err and str(config) in err


def test_a_json_without_its_config_section_is_named(exported):
    path = exported.with_suffix(".json")
    meta = json.loads(path.read_text())
    del meta["config"]
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=rf"{path}.*config"):
        load_tokenizer(exported)


def test_a_json_from_before_patches_loads_as_a_pixel_tokenizer(exported):
    """Exports written before TokenizerConfig.patch_size existed have no such key: they keep working, at patch 1."""
    path = exported.with_suffix(".json")
    meta = json.loads(path.read_text())
    assert meta["config"].pop("patch_size") == 1
    path.write_text(json.dumps(meta))
    back = load_tokenizer(exported)
    assert back.config.patch_size == 1 and back.downsample_factor == 8


def test_tokenizer_config_checks_types_by_key():
    with pytest.raises(ValueError, match="base_channels"):
        TokenizerConfig.from_dict({**tokenizer_config("tiny").to_dict(), "base_channels": "eight"})
    assert TokenizerConfig.from_dict(tokenizer_config("tiny").to_dict()) == tokenizer_config("tiny")


def test_a_world_model_dir_given_as_the_tokenizer_says_what_it_holds(tmp_path, capsys):
    gpt = GPT(GPTConfig(vocab_size=8, tokens_h=2, tokens_w=2, max_frames=2, n_layer=1, n_head=1, n_embd=8))
    export_world_model(gpt, tmp_path / "wm", WorldModelMeta(fps=2.0, tokenizer={}))
    with pytest.raises(FileNotFoundError, match=r"holds a foresight-world-model export \(world_model\.json\)") as info:
        load_tokenizer(tmp_path / "wm")
    assert "tokenizer.safetensors" in str(info.value)  # and what was expected
    args = ["data", "tokenize", f"clips={tmp_path / 'clips'}", f"tokenizer={tmp_path / 'wm'}", f"out={tmp_path / 'tokens'}"]
    assert main(args) == 1
    assert "foresight-world-model" in capsys.readouterr().err
