"""Worker processes that end with their parent.

A parent killed with SIGKILL never shuts its process pool down: its spawn workers would wait for
tasks forever (and keep multiprocessing's resource tracker alive). Pools of the simulator
(`data synth`, `eval closed_loop`) start their workers with `exit_with_parent`.
"""

from __future__ import annotations

import os
import threading
import time

PARENT_POLL_S = 0.5  # how often a worker checks that the process that started it is still there


def exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker (os._exit) as soon as `parent_pid` is no longer its parent.

    A parent killed with SIGKILL never shuts its pool down, and its spawn workers would wait for tasks
    forever (and keep multiprocessing's resource tracker waiting for them). A daemon thread polls
    os.getppid(), which changes when the parent dies (the worker is re-parented): portable, and
    unlike Linux's PR_SET_PDEATHSIG not tied to the lifetime of the thread that started the worker.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
