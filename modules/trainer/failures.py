"""When a run cannot go on: non-finite losses, out of memory, errors and stops during start-up.

Each ends with a message that names the cause and the fix, in ``status.json`` and ``train.log``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from modules import model_registry
from modules.config.schema import config_hash
from modules.fileutil import atomic_torch_save, atomic_write_json
from modules.trainer.context import NonFiniteError, describe_batch
from modules.trainer.logs import get_logger
from modules.trainer.precision import describe as precision_name
from modules.trainer.runfolder import STARTUP_STOP_MESSAGE, list_states, lock_holder, state_name

EXIT_OK = 0
EXIT_NONFINITE = 3
EXIT_OOM = 4
EXIT_DISK_FULL = 5

log = get_logger("trainer")


class TrainerFailures:
    """The failure-handling half of ``Trainer`` (see ``modules.trainer.core``)."""

    def _bad_step(self, err: NonFiniteError) -> int:
        """The step the non-finite value came from (a lazy read finds it some steps later)."""
        return err.step if err.step is not None else self.step + 1

    def _diagnose(self, err: NonFiniteError, batch: Any, losses: dict[str, Any]) -> Path | None:
        if not self.main:
            return None
        self.paths.diagnostics.mkdir(parents=True, exist_ok=True)
        step = self._bad_step(err)
        base = self.paths.diagnostics / f"nonfinite_{state_name(step)}"
        later = step < self.step  # found by a lazy read some steps on: the batch and losses at hand are a later step's
        info = {"what": err.what, "values": {k: str(v) for k, v in err.values.items()},
                "losses": {} if later else {k: str(float(v)) for k, v in losses.items()}, "step": step,
                "epoch": self.epoch, "micro_step": self.ctx.micro_step, "lr": self._lr(),
                "config_hash": config_hash(self.config),
                "batch": f"not kept: found at step {self.step}, read lazily" if later else describe_batch(batch)}
        if later:
            batch = None
        atomic_write_json(base.with_suffix(".json"), info)
        try:
            atomic_torch_save({"batch": batch, "info": info}, base.with_suffix(".pt"))
        except Exception:  # noqa: BLE001 - the JSON report is what matters
            pass
        return base.with_suffix(".json")

    def _stopped_at_startup(self, signal_name: str) -> int:
        """Stopped before the first step: record it when this process owns the run folder
        (holds the lock; before that another trainer may own it), exit 0."""
        self.log(f"{signal_name} received during start-up: stopped, nothing to save")
        if self.main and getattr(self, "lock", None) is not None and self.lock.fd is not None:
            if self.status is None:
                self._open_status()
            self.status.update(state="stopped", message=STARTUP_STOP_MESSAGE, signal=signal_name, step=self.step)
        return EXIT_OK

    def _fail(self, message: str) -> None:
        if self.main and self.status is not None and self.status.data.get("state") == "running":
            self.status.update(state="failed", message=message)

    def _log_error(self, message: str) -> None:
        """Append the CLI's one-line ``error: ...`` to ``train.log`` (rank 0, run folder present).

        The CLI prints UserErrors after the console tee is gone, so without this the Run tab's
        log tail and anyone reading the log would never see why the run stopped."""
        run_dir = getattr(self, "run_dir", None)
        if not self.main or run_dir is None or not Path(run_dir).is_dir():
            return
        owns_lock = getattr(self, "lock", None) is not None and self.lock.fd is not None
        if not owns_lock and lock_holder(run_dir) is not None:
            return  # another trainer runs there: its log is not ours to write
        line = f"error: {message}\n"
        try:
            if self.run_log.file is not None:
                self.run_log.write_raw(line)
            else:
                with open(self.paths.log, "a", encoding="utf-8") as fh:
                    fh.write(line)
        except OSError:
            pass  # the log is a convenience; the error still reaches status.json and the console

    def _nonfinite(self, exc: NonFiniteError) -> int:
        diag = self._diagnose(exc, self._batch, self._losses)
        states = list_states(self.run_dir)
        last = f"the last good state is {states[0].path.relative_to(self.run_dir)}" if states else \
            "no state was saved before it"
        vals = ", ".join(f"{k}={v}" for k, v in exc.values.items())
        msg = (f"non-finite {exc.what} at step {self._bad_step(exc)} ({vals}); training stopped and {last}. "
               f"Diagnostic: {diag.relative_to(self.run_dir) if diag else 'n/a'}. Try a lower learning_rate "
               f"(now {self.config.learning_rate:g}), set grad_clip, or use precision bf16/fp32 "
               f"(now {precision_name(self.config.precision, self.device)}); then --resume latest --force "
               "(the changed settings shape the "
               "run, so resuming with them needs --force)")
        if self.main:
            log.error(f"error: {msg}")
            self.status.update(state="failed", message=msg)
        return EXIT_NONFINITE

    def _oom(self) -> int:
        c = self.config
        self._batch = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        spec = model_registry.get(c.model)
        knobs, advice = spec.memory_hints(c.options) if spec.memory_hints else ([], [])
        knobs = [f"batch_size {c.batch_size}", *knobs,
                 f"precision {precision_name(c.precision, self.device)}",
                 f"grad_accumulation {c.grad_accumulation}"]
        msg = (f"out of {self.device.type.upper()} memory at step {self.step + 1} ({', '.join(knobs)}). Lower "
               "batch_size and raise grad_accumulation by the same factor to keep the global batch"
               + "".join(f", {a}" for a in advice) + ", or use precision bf16; then --resume latest")
        if self.main:
            log.error(f"error: {msg}")
            self.status.update(state="failed", message=msg)
        return EXIT_OOM

    def _disk_full(self, exc: OSError) -> int:
        """A state or export could not be written: the previous state is whole (writes are atomic)."""
        states = list_states(self.run_dir)
        last = (f"the last whole state is {states[0].path.relative_to(self.run_dir)}" if states
                else "no state was saved yet")
        msg = f"{exc.strerror or exc}; training stopped at step {self.step} and {last}; --resume latest after that"
        if self.main:
            log.error(f"error: {msg}")
            self.status.update(state="failed", message=msg)
        return EXIT_DISK_FULL
