"""The CLI surface: the subcommand set is frozen here; every subcommand has a working --help."""

import subprocess
import sys

import pytest

from configs import CONFIG_DIR
from foresight.cli import main
from foresight.commands import COMMANDS, GROUPS, Subcommand
from tests.conftest import REPO_ROOT

LEAF = {"serve", "demo"}  # commands without subcommands: `foresight serve key=value ...`
EXPECTED = {
    "data": {"nuscenes", "nuplan", "opendv", "synth", "tokenize", "merge"},
    "train": {"tokenizer", "world_model", "planner"},
    "eval": {"closed_loop", "world_model", "open_loop", "ablation"},
    "demo": None,
    "bench": {"data", "sim", "world_model", "planner", "closed_loop", "convert"},
    "viz": {"clip"},
    "serve": None,
}


def test_subcommand_set_is_frozen():
    # Adding or removing a subcommand is a deliberate change: update this test with it.
    assert set(GROUPS) == set(EXPECTED)
    assert {g: None if g in LEAF else set(s) for g, s in COMMANDS.items()} == EXPECTED
    assert all(isinstance(COMMANDS[g], Subcommand) for g in LEAF)


def test_top_and_group_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(g in out for g in GROUPS)
    for group in GROUPS:
        assert main([group, "--help"]) == 0
        assert f"foresight {group}" in capsys.readouterr().out


COMMAND_LINES = [[g] if g in LEAF else [g, n] for g, subs in COMMANDS.items() for n in ([None] if g in LEAF else subs)]


@pytest.mark.parametrize("words", COMMAND_LINES, ids=" ".join)
def test_every_subcommand_help_shows_its_config(words, capsys):
    assert main([*words, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"foresight {' '.join(words)}" in out and "Defaults" in out
    sub = COMMANDS[words[0]] if len(words) == 1 else COMMANDS[words[0]][words[1]]
    assert (CONFIG_DIR / f"{sub.config}.yaml").read_text().rstrip() in out  # its YAML as written, comments included


def test_unknown_and_missing_arguments_are_clear_errors(capsys):
    assert main(["nope"]) == 2
    assert "unknown group" in capsys.readouterr().err
    assert main(["data", "nope"]) == 2
    assert "unknown subcommand" in capsys.readouterr().err
    assert main(["data", "nuscenes"]) == 2  # dataroot/out are required
    assert "configuration error" in capsys.readouterr().err
    assert main(["data", "nuscenes", "not_a_key=1", "dataroot=x", "out=y"]) == 2


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "foresight.cli", "viz", "--help"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 0 and "clip" in out.stdout
