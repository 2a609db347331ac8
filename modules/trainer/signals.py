"""SIGTERM/SIGINT as a polite stop request: finish the step, save, exit 0.

Handlers only set a flag; the loop polls it after every optimizer step (and
all ranks agree through ``distributed.any_rank``). Repeated signals (torchrun
forwards the group's SIGTERM to its workers again) are ignored; SIGKILL is the
hard stop.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopRequest:
    """Install with ``with StopRequest() as stop: ... if stop.requested: ...``."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            self.requested = True
            self.signal_name = signal.Signals(signum).name
            print(f"\n{self.signal_name} received: finishing the current step, then saving a state", flush=True)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._previous.clear()
