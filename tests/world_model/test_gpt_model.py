"""GPT model: shapes, configs, causality, muP parameter groups, and that it can learn."""

from __future__ import annotations

import math

import pytest
import torch

from world_model.gpt import GPT, GPT_SIZES, IGNORE_INDEX, GPTConfig, gpt_config


def small_config(**overrides) -> GPTConfig:
    base = dict(vocab_size=32, tokens_h=3, tokens_w=4, max_frames=3, n_layer=2, n_head=2, n_embd=32)
    return GPTConfig(**{**base, **overrides})


def test_forward_shapes_and_initial_loss():
    torch.manual_seed(0)
    config = small_config()
    model = GPT(config)
    tokens = torch.randint(0, config.vocab_size, (2, 3, 3, 4))
    out = model(tokens, targets=tokens)
    assert out.logits.shape == (2, 3 * 12, 32)
    # Fresh model: predictions near uniform, so the loss is near ln(V).
    assert abs(out.loss.item() - math.log(32)) < 0.2
    assert model(tokens[:, :2]).loss is None and model(tokens[:, :2]).logits.shape == (2, 24, 32)


def test_loss_is_shifted_next_token_cross_entropy_with_ignore_index():
    torch.manual_seed(0)
    model = GPT(small_config())
    tokens = torch.randint(0, 32, (1, 2, 3, 4))
    targets = tokens.clone()
    targets[:, 0] = IGNORE_INDEX  # score only the second frame
    out = model(tokens, targets=targets)
    flat = tokens.flatten(1)
    expected = torch.nn.functional.cross_entropy(out.logits[0, 11:23], flat[0, 12:24])
    torch.testing.assert_close(out.loss, expected)


def test_size_registry_matches_reference_sizes():
    assert all(GPT_SIZES[s].n_embd // GPT_SIZES[s].n_head == 128 for s in ("S", "B", "L"))
    expected_millions = {"S": 185, "B": 318, "L": 1200}
    for size, millions in expected_millions.items():
        config = gpt_config(size, vocab_size=16384, tokens_h=18, tokens_w=32, max_frames=8)
        with torch.device("meta"):
            n = GPT(config).num_params()
        assert abs(n / 1e6 - millions) / millions < 0.05, (size, n)
    with pytest.raises(KeyError, match="unknown GPT size"):
        gpt_config("XL", vocab_size=8, tokens_h=1, tokens_w=1, max_frames=1)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="n_head"):
        small_config(n_head=3)
    with pytest.raises(ValueError, match="GPTConfig.max_frames"):
        small_config(max_frames=0)
    with pytest.raises(ValueError, match="unknown fields"):
        GPTConfig.from_dict({**small_config().__dict__, "n_embed": 3})
    model = GPT(small_config())
    with pytest.raises(ValueError, match="exceeds the context"):
        model(torch.zeros(1, 4, 3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\(B, T, 3, 4\)"):
        model(torch.zeros(1, 2, 4, 3, dtype=torch.int64))


@pytest.mark.parametrize("prev_frame_token_input", [False, True])
@pytest.mark.parametrize("mup", [False, True])
def test_changing_a_token_changes_no_earlier_logit(prev_frame_token_input, mup):
    torch.manual_seed(0)
    model = GPT(small_config(prev_frame_token_input=prev_frame_token_input, mup=mup)).eval()
    tokens = torch.randint(0, 32, (2, 3, 3, 4))
    changed_pos = 17  # frame 1, row 1, column 1
    edited = tokens.flatten(1).clone()
    edited[:, changed_pos] = (edited[:, changed_pos] + 5) % 32
    logits = model(tokens).logits
    logits_edited = model(edited.view_as(tokens)).logits
    torch.testing.assert_close(logits_edited[:, :changed_pos], logits[:, :changed_pos], rtol=0, atol=1e-6)
    assert (logits_edited[:, changed_pos:] - logits[:, changed_pos:]).abs().amax() > 1e-4


def test_previous_frame_token_input_reaches_the_same_spatial_position():
    torch.manual_seed(0)
    config = small_config(prev_frame_token_input=True, n_layer=1)
    model = GPT(config)
    tokens = torch.randint(0, 32, (1, 2, 3, 4))
    x0 = model._embed(tokens.flatten(1), 0)
    edited = tokens.clone()
    edited[0, 0, 1, 2] = (edited[0, 0, 1, 2] + 1) % 32  # frame 0, position 6
    x1 = model._embed(edited.flatten(1), 0)
    changed = (x1 - x0).abs().amax(dim=-1)[0] > 0  # (L,)
    assert changed.nonzero().squeeze(-1).tolist() == [6, 6 + 12]


def test_mup_scales_only_hidden_matrices():
    wide = small_config(mup=True, n_embd=64, mup_base_width=16)
    groups = {g["name"]: g for g in GPT(wide).param_groups(lr=1e-2, weight_decay=0.1)}
    assert set(groups) == {"hidden", "embedding"}  # no 1-D parameters without biases / affine LayerNorm
    assert groups["hidden"]["lr"] == pytest.approx(1e-2 / 4) and groups["hidden"]["weight_decay"] == pytest.approx(0.4)
    assert groups["embedding"]["lr"] == 1e-2 and groups["embedding"]["weight_decay"] == 0.1
    assert all(p.ndim == 2 for g in groups.values() for p in g["params"])
    model = GPT(small_config(bias=True))
    plain = {g["name"]: g for g in model.param_groups(lr=1e-2, weight_decay=0.1)}
    assert plain["hidden"]["lr"] == plain["embedding"]["lr"] == 1e-2
    assert plain["no_decay"]["weight_decay"] == 0.0 and all(p.ndim == 1 for p in plain["no_decay"]["params"])
    n_grouped = sum(p.numel() for g in plain.values() for p in g["params"])
    assert n_grouped == model.num_params()
    # Tied head: one tensor shared by the embedding and the output layer.
    assert model.lm_head.weight is model.token_emb.weight
    assert GPT(small_config(tie_weights=False)).lm_head.weight is not GPT(small_config(tie_weights=False)).token_emb.weight


def test_mup_output_multiplier_and_attention_scale():
    config = small_config(mup=True, n_embd=64, mup_base_width=16)
    model = GPT(config)
    assert model.output_mult == pytest.approx(0.25)
    assert model.blocks[0].attn.scale == pytest.approx(1 / 32)
    assert GPT(small_config()).blocks[0].attn.scale is None


def test_tiny_model_overfits_a_fixed_sequence():
    torch.manual_seed(0)
    config = small_config(n_embd=64, vocab_size=32, prev_frame_token_input=True)
    model = GPT(config)
    tokens = torch.randint(0, 32, (2, 3, 3, 4), generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW(model.param_groups(lr=3e-3, weight_decay=0.0), betas=(0.9, 0.95))
    losses = []
    for _ in range(50):
        loss = model(tokens, targets=tokens).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 3.0
    assert losses[-1] < 0.3, losses[-1]
