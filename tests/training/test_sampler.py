"""The resumable data order every stage trains with: epochs of the checkpoint interval, so a run
resumed from a checkpoint sees exactly the batches the uninterrupted run saw from there on."""

import pytest

from foresight.training import ResumableRandomSampler


def play(sampler: ResumableRandomSampler, epochs: range) -> list[int]:
    """The indices of `epochs`, as Lightning draws them (set_epoch, then iterate)."""
    out = []
    for epoch in epochs:
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        assert len(drawn) == len(sampler)
        out += drawn
    return out


def test_epochs_cut_one_seeded_order_and_a_resumed_epoch_repeats_it():
    full = play(ResumableRandomSampler(7, batch_size=3, total_batches=8, seed=1, batches_per_epoch=3), range(3))
    assert len(full) == 24  # 3 + 3 + 2 steps of 3
    for data_pass in range(3):  # every full pass over the 7 items is a permutation
        assert sorted(full[7 * data_pass : 7 * (data_pass + 1)]) == list(range(7))
    assert full[:7] != full[7:14]  # a fresh order every pass
    resumed = ResumableRandomSampler(7, 3, 8, 1, 3)  # a new process, resumed at epoch 1 (step 3)
    assert play(resumed, range(1, 3)) == full[9:]
    assert play(ResumableRandomSampler(7, 3, 8, 2, 3), range(3)) != full  # another seed
    # The same steps in any epoch length: the order is a function of the step alone.
    assert play(ResumableRandomSampler(7, 3, 8, 1, 5), range(2)) == full


def test_replicas_draw_every_process_its_share_of_each_step():
    one = play(ResumableRandomSampler(10, batch_size=2, total_batches=4, seed=0, batches_per_epoch=2), range(2))
    two = play(ResumableRandomSampler(10, batch_size=2, total_batches=4, seed=0, batches_per_epoch=2, replicas=2), range(2))
    assert len(two) == 2 * len(one) and two[:4] == one[:4]  # step 0 of two processes is steps 0-1 of one


def test_oversampled_items_appear_repeats_times_per_pass():
    repeats = [1, 3, 1, 1, 2]  # a pass is 8 positions
    full = play(ResumableRandomSampler(5, batch_size=2, total_batches=12, seed=0, batches_per_epoch=4, repeats=repeats), range(3))
    for data_pass in range(3):
        assert sorted(full[8 * data_pass : 8 * (data_pass + 1)]) == [0, 1, 1, 1, 2, 3, 4, 4]
    with pytest.raises(ValueError, match="repeats"):
        ResumableRandomSampler(5, 2, 12, 0, 4, repeats=[1, 0, 1, 1, 1])
