"""The ``compile`` key: torch.compile of the models a recipe names, in place.

Why in place (``nn.Module.compile``): the module keeps its own state-dict keys (no
``_orig_mod.`` prefix), so states, exports and resume are the same files with the
option on or off, and DDP wraps the compiled module as it wraps the eager one.

- ``none``: eager (the default until the compiled paths are measured faster on a GPU).
- ``default``: torch.compile's default mode (Inductor kernels, fewer launches).
- ``graphs``: mode ``reduce-overhead``, i.e. CUDA graphs on top; on the CPU there are no
  graphs, so it runs as ``default`` and says so. Every micro-step starts with
  ``torch.compiler.cudagraph_mark_step_begin`` so outputs of one step are never read after
  the next replay overwrote them.

The legacy weight norm hooks (jik876's ``weight_g``/``weight_v`` keys) call the fused
``_weight_norm`` kernel, whose backward Inductor cannot feed (it asks for a contiguous
``v``); compiled modules get the same hook computing ``v * g / ||v||`` with plain ops,
which compiles, and keep their parameters and keys.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Iterable

import torch
from torch import nn
from torch.nn.utils.weight_norm import WeightNorm

_TORCH_MODE = {"default": "default", "graphs": "reduce-overhead"}


def effective_mode(mode: str, device: torch.device, accumulation: int = 1) -> str:
    """What ``mode`` runs as on ``device``: ``graphs`` needs CUDA, and one micro-step per optimizer step
    (a replay overwrites the graph's memory, which holds the gradients being accumulated)."""
    if mode == "graphs" and (device.type != "cuda" or accumulation > 1):
        return "default"
    return mode


def compile_models(models: dict[str, nn.Module], targets: Iterable[str], mode: str,
                   device: torch.device, accumulation: int = 1) -> str | None:
    """Compile ``targets`` of ``models`` in place for ``mode``; returns a line for the run log
    (None when nothing was compiled)."""
    if mode == "none":
        return None
    names = [n for n in targets if n in models]
    if not names:
        return f"compile: {mode} asked, but this model names no module to compile; training eagerly"
    runs_as = effective_mode(mode, device, accumulation)
    for name in names:
        traceable_weight_norm(models[name])
        models[name].compile(mode=_TORCH_MODE[runs_as])
    why = "without a GPU" if device.type != "cuda" else "with grad_accumulation above 1"
    note = "" if runs_as == mode else f" (no CUDA graphs {why}: compiled without them)"
    return f"compile: {mode}{note}: torch.compile of {', '.join(names)}; the first steps include compiling"


class _PlainOpsWeightNorm(WeightNorm):
    """The legacy weight norm hook through ``norm_except_dim`` (the norm it initialises ``g`` with)
    instead of the fused kernel: same parameters and names."""

    def compute_weight(self, module: nn.Module) -> torch.Tensor:
        g, v = getattr(module, self.name + "_g"), getattr(module, self.name + "_v")
        return v * (g / torch.norm_except_dim(v, 2, self.dim))


def traceable_weight_norm(module: nn.Module) -> int:
    """Swap ``module``'s legacy weight norm hooks for ``_PlainOpsWeightNorm``; returns how many."""
    swapped = 0
    for m in module.modules():
        for key, hook in list(m._forward_pre_hooks.items()):
            if type(hook) is WeightNorm:
                m._forward_pre_hooks[key] = _PlainOpsWeightNorm(hook.name, hook.dim)
                swapped += 1
    return swapped


def eager_validation(mode: str) -> ContextManager:
    """Validation runs the compiled modules eagerly: clips of every length would each compile (and with
    CUDA graphs record) a graph of their own, and samples render exactly as the exported files will."""
    return torch.compiler.set_stance("force_eager") if mode != "none" else contextlib.nullcontext()


def mark_step(mode: str, device: torch.device, accumulation: int = 1) -> None:
    """Start of a micro-step for CUDA graphs (outputs of the previous replay may be overwritten now)."""
    if effective_mode(mode, device, accumulation) == "graphs":
        torch.compiler.cudagraph_mark_step_begin()
