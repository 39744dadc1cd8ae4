"""Every training process (and every `foresight` command that computes with torch) chooses MKL's math
kernels on one thread before its work, so its first optimizer step is computed at the accuracy asked for.

oneMKL chooses a VML function's kernel (sqrt, exp, ...) on its first call; when the intra-op threads
make that first call together, one thread's chunk can come out of the low-accuracy kernel
(a race in the library's lazy dispatch). That happened to AdamW's first sqrt in a world-model run resumed from its
step-2 checkpoint on a loaded machine: the weights of block 0's qkv projection came out ~1e-4
relative off in half their elements (one thread's chunk), and the resumed run no longer repeated
the uninterrupted one byte for byte (tests/reliability/test_kill_resume.py). The race itself needs
a fresh process and a loaded machine, so it cannot be forced here; what is checked is that
`prepare_run` makes every such first call itself, on one element and on its own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import torch

from foresight.training import prepare_run
from tests.training.test_checkpoint_writes import settings, stage

# The VML-backed ops a training step meets: AdamW's denominators (sqrt), losses and activations.
TRAINING_OPS = ("sqrt", "exp", "log", "tanh", "erf")


def recording(op: Callable[..., torch.Tensor], name: str, calls: list[tuple[str, torch.dtype, int, int]]) -> Callable[..., torch.Tensor]:
    """`op`, recording (name, dtype, number of elements, calling thread) of every call in `calls`."""

    def call(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        calls.append((name, x.dtype, x.numel(), threading.get_ident()))
        return op(x, *args, **kwargs)

    return call


def test_prepare_run_makes_the_first_call_of_every_vml_op_on_one_element_on_its_own_thread(monkeypatch, tmp_path: Path):
    calls: list[tuple[str, torch.dtype, int, int]] = []
    for name in TRAINING_OPS:
        monkeypatch.setattr(torch, name, recording(getattr(torch, name), name, calls))
    prepare_run(stage(tmp_path), settings(), seed=0)
    assert {(name, dtype) for name, dtype, _, _ in calls} == {(name, dtype) for name in TRAINING_OPS for dtype in (torch.float32, torch.float64)}
    assert all(numel == 1 and thread == threading.get_ident() for _, _, numel, thread in calls)  # below every intra-op grain: one thread


def test_every_torch_command_settles_the_kernels_before_its_handler_runs(monkeypatch, tmp_path: Path):
    import foresight.training.precision as precision
    from foresight.cli import run_subcommand

    events: list[str] = []
    monkeypatch.setattr(precision, "settle_vml_kernels", lambda: events.append("settle"))
    monkeypatch.setattr("sim_eval.bench.run", lambda cfg: events.append("handler"))  # a command whose module imports torch
    run_subcommand("bench", "sim", [])
    assert events == ["settle", "handler"]
