"""The training loop's account of losses and gradient norms between two log lines.

Why: reading a loss back to the host (``float(tensor)``) waits for the GPU to finish every
queued kernel, so a read per step keeps the GPU idle while Python prepares the next one. In
lazy mode the ledger keeps each micro-step's losses and each optimizer step's gradient norms
as device tensors and reads them all with one transfer when a log line, a validation or a save
needs them (``flush``). The sums are then formed on the host in the same order and precision
as in eager mode, so the logged figures are the same floats either way.

Non-finite values: eager mode raises at the micro-step that produced one (every rank agrees
through ``distributed.first_over_ranks``). Lazy mode finds them at the flush, names the step they
first appeared at, and raises before anything is logged or saved, so no state is written
after them; fused optimizers skip the update itself on the device (``found_inf``, see
``context.CoreStepContext.step``), so the weights stay those of the last finite step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from modules.trainer import distributed as D


class NonFiniteError(Exception):
    """A loss or gradient norm became NaN/inf (at ``step``, when it is known to differ from the current one)."""

    def __init__(self, what: str, values: dict[str, float], step: int | None = None):
        super().__init__(what)
        self.what = what
        self.values = values
        self.step = step


@dataclass
class _Entry:
    step: int  # the optimizer step (1-based) this entry belongs to
    kind: str  # "loss" (a micro-step's, checked), "norm" (a step's gradient norms, logged) or "check" (checked only)
    keys: list[str]
    values: torch.Tensor | list[float]  # floats, or one fresh 1-d device tensor (copied out of any graph's memory)


def _pack(step: int, kind: str, values: dict[str, Any], device: torch.device) -> _Entry:
    keys = list(values)
    if not any(isinstance(v, torch.Tensor) for v in values.values()):
        return _Entry(step, kind, keys, [float(v) for v in values.values()])
    parts = [v.detach().float().reshape(()).to(device) if isinstance(v, torch.Tensor)
             else torch.tensor(float(v), device=device) for v in values.values()]
    return _Entry(step, kind, keys, torch.stack(parts))


@dataclass
class Ledger:
    """Losses and gradient norms of the steps since the last ``flush``."""

    accumulation: int
    device: torch.device
    lazy: bool = False
    window: dict[str, float] = field(default_factory=dict)  # summed per-step losses since the last log
    norms: dict[str, float] = field(default_factory=dict)  # summed per-step gradient norms since the last log
    steps: int = 0  # optimizer steps in the window
    _pending: list[_Entry] = field(default_factory=list)
    _step_sums: dict[str, float] = field(default_factory=dict)  # the current optimizer step's micro-steps

    def add_losses(self, step: int, losses: dict[str, Any]) -> None:
        """One micro-step's losses (step: the optimizer step it belongs to, 1-based)."""
        self._pending.append(_pack(step, "loss", losses, self.device))
        if not self.lazy:
            self._settle(across_ranks=True)

    def add_check(self, step: int, values: dict[str, torch.Tensor]) -> None:
        """Device values that must be finite (a lazily checked gradient norm); eager mode checks them itself."""
        self._pending.append(_pack(step, "check", values, self.device))

    def end_step(self, step: int, grad_norms: dict[str, Any]) -> None:
        """An optimizer step is complete with these gradient norms (inf is allowed: a scaler's skipped step)."""
        self._pending.append(_pack(step, "norm", grad_norms, self.device))
        if not self.lazy:
            self._settle(across_ranks=False)

    def flush(self) -> None:
        """Read what is pending (one device transfer) and raise ``NonFiniteError`` for the first bad value."""
        if self._pending:
            self._settle(across_ranks=True)

    def take_window(self) -> tuple[dict[str, float], dict[str, float], int]:
        """The window's sums and step count (after a ``flush``), and start a new window."""
        self.flush()
        out = (self.window, self.norms, self.steps)
        self.window, self.norms, self.steps = {}, {}, 0
        return out

    # ---------------------------------------------------------------------------------------
    def _settle(self, across_ranks: bool) -> None:
        entries, self._pending = self._pending, []
        bad: tuple[int, str, dict[str, float]] | None = None
        for entry, values in zip(entries, _to_host(entries)):
            found = {k: v for k, v in values.items() if not math.isfinite(v)} if entry.kind != "norm" else {}
            if found:
                bad = (entry.step, "training loss" if entry.kind == "loss" else "gradient norm", found)
                break
            self._account(entry.kind, values)
        # every rank settles at the same points: the earliest bad step of any rank stops them all
        first = D.first_over_ranks(bad[0] if bad else None, self.device) if across_ranks else (
            bad[0] if bad else None)
        if first is None:
            return
        if bad is not None and bad[0] == first:
            raise NonFiniteError(bad[1], bad[2], step=first)
        raise NonFiniteError("training loss", {"other rank": float("nan")}, step=first)

    def _account(self, kind: str, values: dict[str, float]) -> None:
        if kind == "check":
            return
        if kind == "loss":
            for k, v in values.items():
                self._step_sums[k] = self._step_sums.get(k, 0.0) + v / self.accumulation
            return
        for k, v in self._step_sums.items():
            self.window[k] = self.window.get(k, 0.0) + v
        for k, v in values.items():
            self.norms[k] = self.norms.get(k, 0.0) + v
        self._step_sums = {}
        self.steps += 1


def _to_host(entries: list[_Entry]) -> list[dict[str, float]]:
    """Every entry's values as Python floats, with all device tensors read in one transfer."""
    tensors = [e.values for e in entries if isinstance(e.values, torch.Tensor)]
    flat = iter(torch.cat(tensors).cpu().tolist()) if tensors else iter(())
    out = []
    for e in entries:
        vals = [next(flat) for _ in e.keys] if isinstance(e.values, torch.Tensor) else e.values
        out.append(dict(zip(e.keys, vals)))
    return out
