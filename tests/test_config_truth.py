"""The README's "Real data and GPUs" commands compose to what the README says they do: each command,
parsed from README.md, goes through `foresight ... --cfg job --resolve`, and every number in its
comment (steps, batch per GPU, frame size and rate) is checked against the composed config."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from configs import compose
from foresight.cli import main
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
# Where each training command keeps its steps and per-GPU batch.
TRAINING_SECTION = {("train", "tokenizer"): "tokenizer", ("train", "world_model"): "world_model", ("train", "planner"): "planner.train"}
CLAIMS = {  # a README phrase -> how to read it
    "steps": re.compile(r"(\d+(?:\.\d+)?)k steps"),
    "batch": re.compile(r"batch (\d+) per GPU"),
    "frames": re.compile(r"(\d+)x(\d+) frames"),
    "fps": re.compile(r"at (\d+(?:\.\d+)?) Hz"),
}


def gpu_commands() -> list[tuple[list[str], str]]:
    """(words, comment) of each `foresight` command in the README's "Real data and GPUs" block."""
    section = README[README.index("## Real data and GPUs"):]
    block = re.search(r"```\n(.*?)```", section, flags=re.S).group(1)
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        code, _, comment = line.partition("#")
        if code.strip().startswith("foresight"):
            commands.append((shlex.split(code)[1:], comment.strip()))
    return commands


COMMANDS = gpu_commands()


def composed(words: list[str], capsys) -> dict:
    """`foresight <words> --cfg job --resolve` as the CLI prints it ('...' placeholders filled in)."""
    words = [w.replace("=...", "=runs/placeholder") for w in words]
    assert main([*words, "--cfg", "job", "--resolve"]) == 0, capsys.readouterr().err
    return yaml.safe_load(capsys.readouterr().out)


def section(cfg: dict, dotted: str) -> dict:
    for key in dotted.split("."):
        cfg = cfg[key]
    return cfg


def test_the_block_has_the_pipeline():
    names = [tuple(w for w in words[:2]) for words, _ in COMMANDS]
    assert ("train", "world_model") in names and ("eval", "closed_loop") in names and len(COMMANDS) >= 10
    assert sum(1 for _, comment in COMMANDS if CLAIMS["steps"].search(comment)) >= 4


@pytest.mark.parametrize("words, comment", COMMANDS, ids=[" ".join(w[:2]) + f" #{i}" for i, (w, _) in enumerate(COMMANDS)])
def test_each_gpu_command_composes_to_the_numbers_next_to_it(words, comment, capsys):
    cfg = composed(words, capsys)
    assert "???" not in yaml.safe_dump(cfg)  # every required key is on the command line
    unchecked = comment
    for claim, pattern in CLAIMS.items():
        for match in pattern.finditer(comment):
            unchecked = unchecked.replace(match.group(0), "")
            if claim in ("steps", "batch"):
                stage = section(cfg, TRAINING_SECTION[tuple(words[:2])])
                if claim == "steps":
                    assert stage["max_steps"] == round(float(match.group(1)) * 1000), (words, comment)
                else:
                    assert stage["batch_size"] == int(match.group(1)), (words, comment)
            elif claim == "frames":
                assert (cfg["height"], cfg["width"]) == (int(match.group(1)), int(match.group(2))), (words, comment)
            else:
                assert cfg["fps"] == float(match.group(1)), (words, comment)
    assert not re.search(r"\d", unchecked), f"a number the test does not check: {comment!r}"


@pytest.mark.parametrize("size", ["S", "B", "L"])
def test_stage_2_is_the_decay_phase_of_its_profile(size):
    stage1 = compose("train/world_model", ["experiment=stage1", f"world_model_profile@world_model={size}", "out=o"]).world_model
    stage2 = compose("train/world_model", ["experiment=stage2", f"world_model_profile@world_model={size}", "out=o"]).world_model
    profile = compose("train/world_model", [f"experiment={size}", "out=o"]).world_model
    assert stage1.max_steps == profile.max_steps == 155_000
    assert stage2.max_steps == round(profile.schedule.decay_frac * profile.max_steps) == 15_500  # the reference: 15.5k after 155k
    assert (stage2.schedule.warmup_frac, stage2.schedule.decay_frac) == (0.0, 1.0)
    assert stage2.batch_size == profile.batch_size and stage2.size == size


def test_tiny_stage_2_keeps_its_length():
    assert compose("train/world_model", ["experiment=stage2", "out=o"]).world_model.max_steps == 200
