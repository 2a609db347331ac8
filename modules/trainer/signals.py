"""SIGTERM/SIGINT as a polite stop request.

Two phases. During start-up (building models, loading a base or a state,
reading the dataset) there is nothing to save yet, and building can take
minutes, so the first signal raises ``StartupStop`` at once and the trainer
exits 0 with ``status.json`` saying stopped. Once training begins
(``StopRequest.defer``) a signal only sets a flag; the loop polls it after
every optimizer step (all ranks agree through ``distributed.any_rank``),
saves a state and exits 0. Repeated signals (torchrun forwards the group's
SIGTERM to its workers again) are ignored; SIGKILL is the hard stop.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from modules.trainer.logs import get_logger


class StartupStop(BaseException):
    """A stop signal arrived before training began (a BaseException, so ``except Exception``
    in recipe or library code cannot swallow it)."""

    def __init__(self, signal_name: str):
        super().__init__(f"{signal_name} during start-up")
        self.signal_name = signal_name


class StopRequest:
    """Install with ``with StopRequest(at_startup=True) as stop: ... stop.defer() ... if stop.requested:``.

    ``at_startup=True`` starts in the raising phase; without it, signals only set the flag."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, at_startup: bool = False) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self.starting = at_startup
        self._previous: dict[int, object] = {}

    def defer(self) -> None:
        """From now on a signal only sets ``requested`` (the loop finishes the step and saves)."""
        self.starting = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            return
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        if self.starting:
            self.starting = False  # clean-up after the raise is not interrupted again
            raise StartupStop(self.signal_name)  # the catcher reports it (printing here could re-enter a write)
        get_logger("trainer").info(f"{self.signal_name} received: finishing the current step, then saving a state")

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._previous.clear()
