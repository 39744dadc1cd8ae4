"""Checkpointed RNG state: a resumed run draws exactly what the uninterrupted run drew."""

from __future__ import annotations

import pytest
import torch

from foresight.training.rng_state import load_rng_states, save_rng_states


def test_restored_generators_repeat_their_draws():
    flow = torch.Generator().manual_seed(3)
    torch.manual_seed(1)
    torch.rand(2), torch.rand(2, generator=flow)  # some history before the checkpoint
    checkpoint: dict = {}
    save_rng_states(checkpoint, {"flow_generator": flow})
    expected = (torch.rand(4), torch.rand(4, generator=flow))
    torch.rand(7), torch.rand(7, generator=flow)  # the run goes on, then is killed
    load_rng_states(checkpoint, {"flow_generator": flow})
    again = (torch.rand(4), torch.rand(4, generator=flow))
    assert torch.equal(expected[0], again[0]) and torch.equal(expected[1], again[1])


def test_old_checkpoints_load_and_missing_generators_are_named():
    load_rng_states({})  # a checkpoint from before RNG states were saved: nothing to restore
    checkpoint: dict = {}
    save_rng_states(checkpoint)
    with pytest.raises(ValueError, match="flow_generator"):
        load_rng_states(checkpoint, {"flow_generator": torch.Generator()})
