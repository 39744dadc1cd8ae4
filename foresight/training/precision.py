"""Which numeric precision training runs at, decided on the machine it runs on, and CPU math that
stays at the accuracy asked for.

bf16 autocast pays off on CUDA and on CPUs where oneDNN runs bf16 natively (AVX512-BF16 or AMX:
~2x faster than fp32 for the tiny models). Everywhere else (AVX2-only x86, AMD before Zen 4) bf16
is emulated, 5-20x slower than fp32 (a Linear-GELU-Linear step measured 21x on an AMD EPYC), so
`auto` never hard-codes bf16 for a CPU.

On the CPU, PyTorch hands float32/float64 unary ops (sqrt, exp, log, ...) to MKL's VML, each
intra-op thread its chunk. oneMKL 2024.2 (the one in the PyTorch wheels) chooses a VML function's
kernel lazily on its first call, and when the threads make that first call together (a fresh
process's first large sqrt: AdamW's first step, more often on a loaded machine) one thread can run
its whole chunk with the low-accuracy kernel (errors ~1e-4 relative, ~1000 ulp) although high
accuracy is asked for (measured here: ~9 of 102 fresh processes repeating one AdamW step under
load, 0 of 46 after the warm-up below). A rerun resuming from a checkpoint is such a fresh
process: its first step then differed from the uninterrupted run's. `settle_vml_kernels` makes each
of those first calls on one element, on one thread, before any work.
"""

from __future__ import annotations

import torch

# The torch ops whose float32/float64 CPU kernels call MKL's VML (aten/src/ATen/cpu/vml.h).
VML_UNARY_OPS = ("acos", "asin", "atan", "cos", "erf", "erfc", "erfinv", "exp", "log", "log10", "log2", "sin", "sqrt", "tan", "tanh", "trunc")


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
    AVX512-BF16/AMX), so it runs as it trained (and faster: the demo planner's batched plan call
    511 vs 986 ms on 2 cores of such a CPU); 'fp32' for
    every other case (fp32- or fp16-trained, or bf16 emulated)."""
    if not str(trained).startswith("bf16"):
        return "fp32"
    native = str(device).startswith("cuda") or (str(device) == "cpu" and cpu_has_native_bf16())
    return "bf16" if native else "fp32"


def settle_vml_kernels() -> None:
    """Call every VML-backed unary op (`VML_UNARY_OPS`) once on a one-element float32 and float64
    tensor, on this thread (one element is below every intra-op grain): MKL then has chosen each
    function's kernel before the intra-op threads first call it together (see the module docstring).
    Cheap (32 one-element ops), so every training process calls it before its work (`prepare_run`),
    and so does every `foresight` command whose handler imports torch, before the handler (foresight/cli.py)."""
    for dtype in (torch.float32, torch.float64):
        one = torch.full((1,), 0.5, dtype=dtype)  # in every op's domain
        for name in VML_UNARY_OPS:
            getattr(torch, name)(one)
