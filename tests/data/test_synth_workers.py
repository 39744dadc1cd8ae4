"""Worker processes die with their parent (issue #17, item 13): `kill -9` of `data synth` (or of
`eval closed_loop`) alone used to leave its spawn workers, and with them multiprocessing's
resource tracker, blocked forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")


def _children() -> dict[int, list[int]]:
    """ppid -> pids of the live (not zombie) processes, from /proc."""
    out: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] != "Z":
            out.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


COMMANDS = {
    "data_synth": ["data", "synth", "episodes=200", "workers=2", "height=16", "width=32", "suites=[smoke]"],
    "eval_closed_loop": ["eval", "closed_loop", "planner=expert", "suite=nominal", "episodes=60", "workers=2", "videos=0"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_killing_the_parent_ends_its_workers_and_the_resource_tracker(tmp_path, command):
    args = [*COMMANDS[command], f"out={tmp_path / 'out'}"]
    parent = subprocess.Popen([sys.executable, "-m", "foresight.cli", *args], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    helpers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and parent.poll() is None:
            helpers = _children().get(parent.pid, [])
            workers = [p for p in helpers if "spawn_main" in _cmdline(p)]
            if len(workers) == 2 and any("resource_tracker" in _cmdline(p) for p in helpers):
                break
            time.sleep(0.1)
        assert len([p for p in helpers if "spawn_main" in _cmdline(p)]) == 2, "the two workers never started"
        time.sleep(1.0)  # let the workers get into their task loop
        assert parent.poll() is None, "the conversion ended before it could be killed"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in helpers):
            time.sleep(0.1)
        left = {p: _cmdline(p) for p in helpers if _alive(p)}
        assert left == {}, f"still running 10 s after the parent was killed: {left}"
    finally:
        for pid in [parent.pid, *helpers]:  # only the processes this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
