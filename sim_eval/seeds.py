"""Which scenario seeds are for evaluation, and the check that training never uses them.

Every scenario is `(suite, index, seed)`. Closed-loop evaluation (`foresight eval closed_loop`,
configs/eval/closed_loop.yaml `seed: 0`, the demo's closed-loop stages) runs episodes with seeds
counted up from 0 (`seed + k // suite_size`), and the profiles' held-out synthetic split
(configs/profile/*.yaml `heldout_seed: 9000`) records its clips with seeds from 9000. Training
data (configs/data/synth.yaml `seed: 1000`) and closed-loop training (DAgger rollouts, their
validation) take seeds outside both ranges.
"""

from __future__ import annotations

from collections.abc import Iterable

EVALUATION_SEED_RANGES: tuple[range, ...] = (range(0, 1000), range(9000, 10000))


def is_evaluation_seed(seed: int) -> bool:
    """True when scenario seed `seed` is reserved for evaluation (EVALUATION_SEED_RANGES)."""
    return any(int(seed) in r for r in EVALUATION_SEED_RANGES)


def check_training_seeds(seeds: Iterable[int], what: str) -> None:
    """Refuse (ValueError naming `what`) scenario seeds of evaluation episodes in training."""
    bad = sorted({int(s) for s in seeds if is_evaluation_seed(s)})
    if bad:
        ranges = ", ".join(f"[{r.start}, {r.stop})" for r in EVALUATION_SEED_RANGES)
        raise ValueError(f"{what} would use the evaluation scenario seeds {bad[:5]}{' ...' if len(bad) > 5 else ''}: "
                         f"seeds in {ranges} are reserved for evaluation (sim_eval/seeds.py); choose training seeds (e.g. from 1000)")
