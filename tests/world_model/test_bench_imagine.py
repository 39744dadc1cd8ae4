"""`bench world_model`'s imagined frames are told what the planner's imagine mode tells the world
model: the ego's motion into each frame and the warped previous frame, read from the token store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foresight.cli import run_subcommand
from tests.world_model.conftest import write_token_store
from world_model.bench import _store_windows
from world_model.tokens.reader import TokenStore
from world_model.tokens_dataset import TokenWindowDataset

VOCAB, GRID = 16, (2, 4)


def conditioned_store(out, n_clips: int = 2, n_frames: int = 9, fps: float = 5.0):
    """Clips of random tokens with poses (turning at varying speed) and warped tokens (-1 at a few places)."""
    rng = np.random.default_rng(0)
    clips, poses, warped = [], [], []
    for _ in range(n_clips):
        tokens = rng.integers(0, VOCAB, (n_frames, *GRID)).astype(np.uint16)
        t = np.arange(n_frames) / fps
        yaw = 0.1 * t + rng.uniform(-1, 1)
        poses.append(np.c_[np.cumsum(rng.uniform(0.5, 2.0, n_frames)) * np.cos(yaw), np.cumsum(rng.uniform(0.5, 2.0, n_frames)) * np.sin(yaw), np.zeros(n_frames), yaw])
        warp = rng.integers(0, VOCAB, tokens.shape)
        warp[rng.random(tokens.shape) < 0.3] = -1
        clips.append(tokens)
        warped.append(warp)
    return write_token_store(out, clips, fps, vocab=VOCAB, poses=poses, warped=warped)


def test_conditioned_windows_carry_the_motions_and_warped_tokens_the_training_windows_carry(tmp_path):
    store = TokenStore(conditioned_store(tmp_path / "tokens"))
    windows = _store_windows(store, 5.0, n_frames=3, n_windows=10, motion=True, warp=True)
    assert windows.conditioning == "motion+warp"
    # Windows of 3 frames plus the frame to imagine: 2 per 9-frame clip, cut at frames 0 and 4.
    reference = TokenWindowDataset([store.clip_tokens(i) for i in range(len(store))], n_frames=4, stride=4,
                                   poses=[store.clip_poses(i) for i in range(len(store))], warped=[store.clip_warped(i) for i in range(len(store))])
    assert len(windows) == len(reference) == 4
    for k in range(4):
        item = reference[k]
        assert torch.equal(windows.tokens[k], item["tokens"][:3])
        assert torch.allclose(windows.ego_motion[k], item["ego_motion"], equal_nan=True)
        assert torch.isfinite(windows.ego_motion[k, 1:]).all() and torch.isnan(windows.ego_motion[k, 0]).all()
        assert torch.equal(windows.warped_prev[k], item["warped_prev"])
    unconditioned = _store_windows(store, 5.0, n_frames=3, n_windows=10)
    assert unconditioned.conditioning == "none" and unconditioned.ego_motion is None and unconditioned.warped_prev is None
    assert len(unconditioned) == 6  # 3-frame windows: 3 per clip


def test_windows_at_a_subsampled_rate_keep_the_motion_but_not_the_stored_warp(tmp_path):
    store = TokenStore(conditioned_store(tmp_path / "tokens", n_frames=17, fps=10.0))
    windows = _store_windows(store, 5.0, n_frames=3, n_windows=10, motion=True, warp=True)
    assert windows.conditioning == "motion"  # warped tokens are for the store's previous frame, not the model's


@pytest.mark.parametrize("conditioned", [True, False])
def test_bench_imagines_conditioned_frames_with_identical_tokens(tmp_path, conditioned, capsys, monkeypatch):
    import world_model.bench as bench
    from world_model.artifact import WorldModelMeta, export_world_model
    from world_model.gpt import GPT, GPTConfig

    told = []  # per generate_frame call: (motions given, warped tokens given)

    def spy(model, **kwargs):
        told.append((kwargs.get("ego_motion") is not None, kwargs.get("warped_prev") is not None))
        return generate_frame(model, **kwargs)

    generate_frame = bench.generate_frame
    monkeypatch.setattr(bench, "generate_frame", spy)

    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=VOCAB, tokens_h=GRID[0], tokens_w=GRID[1], max_frames=4, n_layer=1, n_head=2, n_embd=32,
                        prev_frame_token_input=True, prev_frame_token_position="target", ego_motion_input=True, prev_frame_warp=True))
    export_world_model(gpt.eval(), tmp_path / "wm", WorldModelMeta(fps=5.0, tokenizer={"architecture": "test-tokens", "weights_sha256": "a" * 64}))
    result = run_subcommand("bench", "world_model", [
        "image_height=16", "image_width=32", "train_steps=0", "precisions=[fp32]", "decode_tokens=4", "tokenizer_batch=2", "tokenizer_steps=1",
        "tokenizer.model.base_channels=4", "hf_baseline=false", f"imagine_world_model={tmp_path / 'wm'}",
        f"imagine_tokens={conditioned_store(tmp_path / 'tokens')}", "imagine_windows=3", f"imagine_conditioned={str(conditioned).lower()}",
    ])
    capsys.readouterr()
    assert result["imagine_conditioning"] == ("motion+warp" if conditioned else "none")
    assert result["imagine_identical"] is True and result["imagine_static_identical"] is True
    assert told and set(told) == {(conditioned, conditioned)}  # every path, plain and speculative, told the same
    assert result["imagine_windows"] == 3 and "wm" in result["imagine_weights"]
