"""``precision: auto``: the fastest precision the training device runs well.

bf16 on CUDA GPUs that support it (Ampere and newer: same range as fp32, no loss scaling), fp16
with loss scaling on older CUDA GPUs, fp32 on the CPU (CPU autocast gains little and changes the
numbers). The config keeps ``auto``, so a run resumed on other hardware resolves again.
"""

from __future__ import annotations

from typing import Any

EXPLICIT = ("fp32", "bf16", "fp16")


def resolve_precision(precision: str, device: Any) -> str:
    """The precision ``precision`` means on ``device`` (a torch.device or "cpu"/"cuda")."""
    if precision in EXPLICIT:
        return precision
    kind = getattr(device, "type", str(device))
    if kind != "cuda":
        return "fp32"
    import torch

    # native bf16 from compute capability 8 (Ampere) on; older cards only emulate it (slowly): fp16 there
    index = getattr(device, "index", None)
    try:
        major = torch.cuda.get_device_capability(index if index is not None else torch.cuda.current_device())[0]
    except (RuntimeError, AssertionError):  # planning for a GPU this machine cannot inspect: the usual case
        return "bf16"
    return "bf16" if major >= 8 else "fp16"


def describe(precision: str, device: Any) -> str:
    """``fp32`` or ``bf16 (auto)``: what a log line or a message shows."""
    resolved = resolve_precision(precision, device)
    return f"{resolved} (auto)" if precision == "auto" else resolved
