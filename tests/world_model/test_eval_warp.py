"""`foresight eval world_model` reports the ground-plane warp baseline beside copy-last: its scores,
the model's paired gain over it with a standard error, and nothing for clips without a camera mount."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from data.store import ClipStore
from data.store.writer import ClipStoreWriter
from foresight.cli import main, run_subcommand
from world_model.artifact import WorldModelMeta, export_world_model
from world_model.gpt.config import GPTConfig
from world_model.gpt.model import GPT
from world_model.tokenizer import ConvTokenizer, export_tokenizer, tokenizer_config
from world_model.tokenizer.export import load_image_tokenizer

WARP_KEYS = ("psnr_warp_t1", "psnr_warp_t2", "ssim_warp_t1", "psnr_road_warp_t1", "psnr_changed_warp_t2",
             "gain_vs_warp_t1", "gain_vs_warp_t2", "gain_vs_warp_t1_stderr", "gain_vs_warp_t2_stderr",
             "win_rate_vs_warp_t1", "win_rate_vs_warp_t2")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A held-out synthetic store (with extrinsics), the same clips without them, an untrained tiny
    tokenizer and world model on its tokens."""
    root = tmp_path_factory.mktemp("warp_eval")
    assert main(["data", "synth", f"out={root / 'heldout'}", "episodes=2", "suites=[smoke]", "seed=9000", "height=32", "width=64", "fps=5"]) == 0
    with ClipStoreWriter(root / "no_mount", "synth", {"test": "no extrinsics"}, codec="png") as w:
        for clip in ClipStore(root / "heldout"):
            w.add(clip.clip_id, [replace(clip, extrinsics=None)])
    torch.manual_seed(0)
    tokenizer = ConvTokenizer(tokenizer_config("tiny", base_channels=4)).eval()
    export_tokenizer(tokenizer, root / "tok")
    identity = load_image_tokenizer(root / "tok").identity
    gpt = GPT(GPTConfig(vocab_size=tokenizer.codebook_size, tokens_h=4, tokens_w=8, max_frames=4, n_layer=1, n_head=2, n_embd=16))
    export_world_model(gpt.eval(), root / "wm", WorldModelMeta(fps=5.0, tokenizer=identity))
    return root


def _eval(root, clips: str, out: str) -> dict:
    return run_subcommand("eval", "world_model", [
        f"checkpoint={root / 'wm'}", f"tokenizer={root / 'tok'}", f"clips={clips}", f"out={root / out}",
        "max_windows=6", "batch_size=4", "videos=0", "horizon=2", "context_frames=3",
    ])


def test_warp_baseline_keys_and_paired_gain(artifacts):
    m = _eval(artifacts, str(artifacts / "heldout"), "eval")
    for key in WARP_KEYS:
        assert m[key] is not None and key in m["per_source"]["synth"], key
    assert m["warp_coverage"] == 1.0 and m["num_windows_warp"] == m["num_windows"] == 6
    for i in (1, 2):
        # Paired over the same windows: the mean gain is the difference of the two mean PSNRs.
        assert m[f"gain_vs_warp_t{i}"] == pytest.approx(m[f"psnr_t{i}"] - m[f"psnr_warp_t{i}"], abs=1e-6)
        assert m[f"gain_vs_warp_t{i}_stderr"] > 0 and 0 <= m[f"win_rate_vs_warp_t{i}"] <= 1
    # The expert drives forward in every window: moving the road with the ego beats leaving it in place.
    assert m["psnr_road_warp_t2"] > m["psnr_road_copy_last_raw_t2"]


def test_clips_without_a_camera_mount_have_no_warp_keys(artifacts):
    both = _eval(artifacts, f"[{artifacts / 'heldout'},{artifacts / 'no_mount'}]", "eval_mixed")
    bare = both["per_source"]["synth@no_mount"]
    assert bare["warp_coverage"] == 0.0 and bare["num_windows_warp"] == 0
    assert not any(key in bare for key in WARP_KEYS)
    # Pooled: the warp keys cover only the windows that have it, with their own count.
    assert both["warp_coverage"] == 0.5 and both["num_windows_warp"] == 6 and both["num_windows"] == 12
    assert both["psnr_warp_t1"] == pytest.approx(both["per_source"]["synth"]["psnr_warp_t1"])


def test_raw_copy_last_gain_and_the_counterfactual_strip(artifacts, tmp_path):
    m = _eval(artifacts, str(artifacts / "heldout"), "eval_raw")
    for i in (1, 2):  # paired against the raw last frame: the difference of the mean PSNRs, with an error
        assert m[f"gain_vs_copy_last_raw_t{i}"] == pytest.approx(m[f"psnr_t{i}"] - m[f"psnr_copy_last_raw_t{i}"], abs=1e-6)
        assert m[f"gain_vs_copy_last_raw_t{i}_stderr"] > 0
    assert m["counterfactual"] is None and not (artifacts / "eval_raw" / "counterfactual.png").exists()  # unconditioned model
    # A conditioned model: one strip of every manoeuvre from the first window with poses.
    identity = load_image_tokenizer(artifacts / "tok").identity
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=load_image_tokenizer(artifacts / "tok").model.codebook_size, tokens_h=4, tokens_w=8, max_frames=4,
                       n_layer=1, n_head=2, n_embd=16, ego_motion_input=True)
    export_world_model(GPT(config).eval(), tmp_path / "wm_cond", WorldModelMeta(fps=5.0, tokenizer=identity))
    m = run_subcommand("eval", "world_model", [
        f"checkpoint={tmp_path / 'wm_cond'}", f"tokenizer={artifacts / 'tok'}", f"clips={artifacts / 'heldout'}", f"out={tmp_path / 'out'}",
        "max_windows=2", "batch_size=2", "videos=0", "horizon=1", "context_frames=3", "counterfactual_frames=2",
    ])
    cf = m["counterfactual"]
    assert (tmp_path / "out" / cf["png"]).is_file() and set(cf["motions"]) == {"keep_lane", "turn_left", "turn_right", "brake"}
    assert all(len(v) == 2 for v in cf["motions"].values()) and cf["clip_id"]
