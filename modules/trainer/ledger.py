"""The training loop's account of losses and gradient norms between two log lines.

Why: reading a loss back to the host (``float(tensor)``) waits for the GPU to finish every
queued kernel, so a read per step keeps the GPU idle while Python prepares the next one. In
lazy mode the ledger keeps each micro-step's losses and each optimizer step's gradient norms
as device tensors and reads them all with one transfer when a log line, a validation or a save
needs them (``flush``). The sums are then formed on the host in the same order and precision
as in eager mode, so the logged figures are the same floats either way.

Non-finite values: eager mode raises at the micro-step that produced one (every rank agrees
through ``distributed.any_rank``). Lazy mode finds them at the flush, names the step they
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
    values: dict[str, Any]  # floats or 0-d device tensors


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
        self._pending.append(_Entry(step, "loss", dict(losses)))
        if not self.lazy:
            self._settle(across_ranks=True)

    def add_check(self, step: int, values: dict[str, torch.Tensor]) -> None:
        """Device values that must be finite (a lazily checked gradient norm); eager mode checks them itself."""
        self._pending.append(_Entry(step, "check", dict(values)))

    def end_step(self, step: int, grad_norms: dict[str, Any]) -> None:
        """An optimizer step is complete with these gradient norms (inf is allowed: a scaler's skipped step)."""
        self._pending.append(_Entry(step, "norm", dict(grad_norms)))
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
        host = _to_host([e.values for e in entries])
        bad: tuple[int, str, dict[str, float]] | None = None
        for entry, values in zip(entries, host):
            found = {k: v for k, v in values.items() if not math.isfinite(v)} if entry.kind != "norm" else {}
            if found:
                bad = (entry.step, "training loss" if entry.kind == "loss" else "gradient norm", found)
                break
            self._account(entry.kind, values)
        failed = D.any_rank(bad is not None, self.device) if across_ranks else bad is not None
        if failed:
            if bad is None:
                raise NonFiniteError("training loss", {"other rank": float("nan")})
            step, what, found = bad
            raise NonFiniteError(what, found, step=step)

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


def _to_host(rows: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Every value as a Python float, with all device tensors read in one transfer."""
    tensors = [v for row in rows for v in row.values() if isinstance(v, torch.Tensor)]
    flat = iter(torch.stack([t.detach().float().reshape(()) for t in tensors]).cpu().tolist()) if tensors \
        else iter(())
    return [{k: next(flat) if isinstance(v, torch.Tensor) else float(v) for k, v in row.items()} for row in rows]
