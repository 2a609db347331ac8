"""What the loop hands a recipe per micro-batch (``CoreStepContext``) and the data-loader plumbing
that makes an epoch's order depend only on (seed, epoch) and keeps workers deaf to signals."""

from __future__ import annotations

import contextlib
import math
import random
import signal
from typing import TYPE_CHECKING, Any, ContextManager

import numpy as np
import torch

from modules.trainer import distributed as D
from modules.trainer.ledger import NonFiniteError  # noqa: F401 (re-exported: raised by the step and the ledger)
from modules.trainer.precision import resolve_precision
from modules.trainer.recipe import StepContext

if TYPE_CHECKING:
    from modules.trainer.core import Trainer


class CoreStepContext(StepContext):
    """The core's ``StepContext``: accumulation-aware backward and step per optimizer."""

    def __init__(self, trainer: "Trainer"):
        self.t = trainer
        self.device = trainer.device
        self.precision = resolve_precision(trainer.config.precision, trainer.device)
        self.accumulation = trainer.config.grad_accumulation
        self.micro_step = 0
        self.global_step = 0
        self.epoch = 0
        if self.precision == "fp32":
            self._dtype = None
        else:
            self._dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16

    def autocast(self) -> ContextManager:
        if self._dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._dtype)

    def backward(self, loss: torch.Tensor, optimizer: str) -> None:
        params = self.t.opt_params[optimizer]
        loss = loss / self.accumulation
        scaler = self.t.scalers.get(optimizer)
        if scaler is not None:
            loss = scaler.scale(loss)
        loss.backward(inputs=params)

    def step(self, optimizer: str) -> None:
        if not self.is_boundary:
            return
        t = self.t
        opt = t.optimizers[optimizer]
        params = t.opt_params[optimizer]
        scaler = t.scalers.get(optimizer)
        if scaler is not None:
            scaler.unscale_(opt)
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=t.device)
        # lazy (no host read): a non-finite norm makes the fused kernel skip the update on the device
        # (its ``found_inf``), and the ledger raises for it at its next flush
        lazy = t.ledger.lazy and scaler is None and bool(opt.defaults.get("fused"))
        if lazy:
            t.ledger.add_check(t.step + 1, {f"grad_norm_{optimizer}": norm})
            opt.found_inf = (~torch.isfinite(norm)).to(torch.float32)  # 0-d, like the step counts it adjusts
            logged: float | torch.Tensor = norm.detach()
        else:
            logged = float(norm)
            if not math.isfinite(logged) and scaler is None:
                raise NonFiniteError(f"gradient norm of optimizer {optimizer!r}", {f"grad_norm_{optimizer}": logged})
        if t.config.grad_clip and grads and (lazy or math.isfinite(logged)):
            torch.nn.utils.clip_grads_with_norm_(params, t.config.grad_clip, norm)
        try:
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
        finally:
            if lazy:
                del opt.found_inf
        opt.zero_grad(set_to_none=True)
        t.step_grad_norms[optimizer] = logged


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _ignore_signals_in_worker(worker_id: int, inner: Any = None) -> None:
    """Loader workers ignore SIGTERM/SIGINT: the main process stops them after saving.

    They are forked with these signals blocked (``_signals_blocked``), so a signal
    sent to the process group while a worker starts is discarded, not fatal.
    """
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    if inner is not None:
        inner(worker_id)


@contextlib.contextmanager
def _signals_blocked():
    """Block SIGTERM/SIGINT in this thread while loader workers fork (delivered afterwards)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _EpochTagged:
    """Batch sampler yielding ``(epoch, index)`` so persistent workers learn the epoch per item."""

    def __init__(self, sampler: D.EpochBatchSampler):
        self.sampler = sampler

    def __iter__(self):
        e = self.sampler.epoch
        for batch in self.sampler:
            yield [(e, i) for i in batch]

    def __len__(self) -> int:
        return len(self.sampler)


class _EpochDataset(torch.utils.data.Dataset):
    """Calls the recipe dataset's ``set_epoch`` in whichever process fetches the item."""

    def __init__(self, ds: Any):
        self.ds = ds
        self.epoch: int | None = None
        self.has_set_epoch = hasattr(ds, "set_epoch")

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if self.has_set_epoch and epoch != self.epoch:
            self.ds.set_epoch(epoch)
        self.epoch = epoch
        return self.ds[index]


class _WorkerInit:
    def __init__(self, inner: Any):
        self.inner = inner

    def __call__(self, worker_id: int) -> None:
        _ignore_signals_in_worker(worker_id, self.inner)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def describe_batch(batch: Any) -> Any:
    """Shapes and ranges of a batch, for diagnostics."""
    if isinstance(batch, torch.Tensor):
        d: dict[str, Any] = {"shape": list(batch.shape), "dtype": str(batch.dtype)}
        if batch.numel() and batch.is_floating_point():
            f = batch.detach().float()
            d.update(min=float(f.min()), max=float(f.max()), finite=bool(torch.isfinite(f).all()))
        return d
    if isinstance(batch, dict):
        return {str(k): describe_batch(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [describe_batch(v) for v in batch[:16]]
    return repr(batch)[:200]
