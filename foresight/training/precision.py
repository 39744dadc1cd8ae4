"""Which numeric precision training runs at, decided on the machine it runs on.

bf16 autocast pays off on CUDA and on CPUs where oneDNN runs bf16 natively (AVX512-BF16 or AMX:
~2x faster than fp32 for the tiny models). Everywhere else (AVX2-only x86, AMD before Zen 4) bf16
is emulated, 5-20x slower than fp32 (a Linear-GELU-Linear step measured 21x on an AMD EPYC), so
`auto` never hard-codes bf16 for a CPU.
"""

from __future__ import annotations

import torch


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def on_cuda(accelerator: str) -> bool:
    """Whether a Lightning `accelerator` setting ends up on CUDA here."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(precision: str, accelerator: str) -> str:
    """A Lightning precision for `precision`: 'auto' is bf16-mixed on CUDA, bf16-mixed on a CPU with
    native bf16, else 32-true; anything else passes through unchanged."""
    if precision != "auto":
        return precision
    if on_cuda(accelerator) or cpu_has_native_bf16():
        return "bf16-mixed"
    return "32-true"


def inference_precision(trained: str, device: str = "cpu") -> str:
    """The precision a planner trained at Lightning precision `trained` (resolved: '32-true',
    'bf16-mixed', ...) runs at on `device` ('cpu', 'cuda', 'cuda:N'), as VAMPlanner names it: 'bf16'
    (autocast) when it trained in bf16 and the device runs bf16 natively (CUDA, or a CPU with
    AVX512-BF16/AMX), so it runs as it trained and ~1.4x faster per plan on such a CPU; 'fp32' for
    every other case (fp32- or fp16-trained, or bf16 emulated)."""
    if not str(trained).startswith("bf16"):
        return "fp32"
    native = str(device).startswith("cuda") or (str(device) == "cpu" and cpu_has_native_bf16())
    return "bf16" if native else "fp32"
