"""`dagger.*` of configs/train/planner.yaml: how many DAgger rounds, on which scenarios, with how much
expert control, and how long each round fine-tunes. The YAML holds the defaults (commented)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data.settings import check_int, check_real, set_field
from sim_eval.scenarios.suites import suite_names
from sim_eval.seeds import check_training_seeds
from sim_eval.synth import SynthEpisode, synth_episodes


@dataclass(frozen=True)
class DaggerSettings:
    """rounds: DAgger rounds after the base training (0: none); episodes_per_round: rollouts per
    round, cycling through the scenarios of `suites` (interleaved: scenario j of every suite in
    turn) with seeds from `seed` (round r continues the cycle where round r - 1 stopped);
    beta, beta_decay: the expert drives a plan with probability beta * beta_decay^(r - 1) in
    round r = 1..rounds; steps_per_round: fine-tuning
    steps per round (from the previous round's planner, on the original and every round's data)
    at peak learning rate lr (None: planner.train.lr); fine_tune_val_windows: the fine-tunes' held-out
    windows (their open-loop check; the weights do not depend on it);
    workers: rollout processes; validation_episodes: closed-loop `nominal` episodes with seeds
    from validation_seed scored after every round (and for the base planner). Every seed used
    must be a training seed (sim_eval/seeds.py)."""

    rounds: int
    episodes_per_round: int
    suites: tuple[str, ...]
    seed: int
    beta: float
    beta_decay: float
    steps_per_round: int
    lr: float | None
    fine_tune_val_windows: int
    workers: int
    validation_episodes: int
    validation_seed: int

    def __post_init__(self) -> None:
        check_int("dagger.rounds", self.rounds, 0)
        check_int("dagger.episodes_per_round", self.episodes_per_round, 1)
        check_int("dagger.steps_per_round", self.steps_per_round, 1)
        check_int("dagger.workers", self.workers, 1)
        check_int("dagger.fine_tune_val_windows", self.fine_tune_val_windows, 1)
        check_int("dagger.validation_episodes", self.validation_episodes, 0)
        check_int("dagger.seed", self.seed, 0)
        check_int("dagger.validation_seed", self.validation_seed, 0)
        set_field(self, "beta", check_real("dagger.beta", self.beta, 0.0, 1.0))
        if self.lr is not None:
            set_field(self, "lr", check_real("dagger.lr", self.lr, 0.0, low_open=True))
        set_field(self, "beta_decay", check_real("dagger.beta_decay", self.beta_decay, 0.0, 1.0))
        unknown = [s for s in self.suites if s not in suite_names()]
        if not self.suites or unknown:
            raise ValueError(f"dagger.suites must be a non-empty list of {list(suite_names())}, got {list(self.suites)}")
        if self.rounds:
            check_training_seeds((e.seed for r in range(1, self.rounds + 1) for e in self.episodes(r)), "dagger.seed")
            check_training_seeds((e.seed for e in self.validation_episode_list()), "dagger.validation_seed")

    def beta_at(self, round_index: int) -> float:
        """P(the expert drives a plan) in round `round_index` (1-based)."""
        return self.beta * self.beta_decay ** (round_index - 1)

    def episodes(self, round_index: int) -> list[SynthEpisode]:
        """The scenarios round `round_index` (1-based) rolls out: episodes (r-1)E .. rE-1 of the
        cycle through `suites` from `seed`, the suites interleaved (a round of 5 rollouts over 5
        suites plays one scenario of each)."""
        e = self.episodes_per_round
        return synth_episodes(list(self.suites), round_index * e, self.seed, interleave=True)[(round_index - 1) * e:]

    def validation_episode_list(self) -> list[SynthEpisode]:
        """The per-round closed-loop check: `nominal` scenarios with training seeds."""
        return synth_episodes(["nominal"], self.validation_episodes, self.validation_seed)


@dataclass(frozen=True)
class DaggerRoundDir:
    """Where round r of `foresight train planner ... dagger.rounds=N` keeps its work (OUT/dagger/round_RR):
    clips/ (the rollouts, with expert_labels/), tokens/ (their tokens), train/ (the fine-tuning run;
    train/vam is the round's planner), validation/ (its closed-loop check), round.json (written last:
    the round is done)."""

    root: Path

    @classmethod
    def of(cls, out: str | Path, round_index: int) -> "DaggerRoundDir":
        return cls(Path(out) / "dagger" / f"round_{round_index:02d}")

    @property
    def clips(self) -> Path:
        return self.root / "clips"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def vam(self) -> Path:
        return self.root / "train" / "vam"

    @property
    def validation(self) -> Path:
        return self.root / "validation"

    @property
    def record(self) -> Path:
        return self.root / "round.json"
