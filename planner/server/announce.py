"""The line a running server logs once it accepts connections, and reading it back from another
process: how tests and benchmarks that start `foresight serve port=0` learn the port it bound."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

LISTENING = "NeuroNCAP planner server for %r listening on %s"  # logged by planner.server.app.serve (planner name, URL)
_PORT = re.compile(r"listening on http://[^:/\s]+:(\d+)")


def wait_for_port(lines: Iterable[str], timeout_s: float = 60.0) -> tuple[int | None, list[str]]:
    """Read a server process's log lines (e.g. `process.stderr` opened as text) until the LISTENING
    line; returns (its port, the lines read). The port is None when the log ended first (the
    process exited) or `timeout_s` [s] passed between lines; the lines say why."""
    deadline = time.monotonic() + timeout_s
    read: list[str] = []
    for line in lines:
        read.append(line)
        match = _PORT.search(line)
        if match:
            return int(match.group(1)), read
        if time.monotonic() > deadline:
            break
    return None, read
