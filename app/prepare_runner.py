"""Run the preparation engine in a worker thread so the tab can stream its log and progress meanwhile.

The engine (``modules.prepare.pipeline``) is imported inside the thread, never at UI start-up.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Any

from modules.prepare.options import PrepareOptions
from modules.workspace import Workspace


@dataclasses.dataclass
class PrepareRun:
    """Shared between the preparation thread and the generator that streams its progress."""

    lines: "queue.Queue[str]" = dataclasses.field(default_factory=queue.Queue)
    fraction: float = 0.0
    message: str = "starting"
    result: Any = None
    exception: BaseException | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


def start(workspace: Workspace, voice: str, options: PrepareOptions) -> tuple[PrepareRun, threading.Thread]:
    """Start preparing ``voice`` in a daemon thread; the returned state fills in as it runs."""
    state = PrepareRun()
    thread = threading.Thread(target=_worker, args=(workspace, voice, options, state),
                              name=f"prepare-{voice}", daemon=True)
    thread.start()
    return state, thread


def drain(source: "queue.Queue[str]", into: list[str]) -> bool:
    """Move every waiting log line into ``into``; True when there was at least one."""
    got = False
    while True:
        try:
            into.append(source.get_nowait())
            got = True
        except queue.Empty:
            return got


def _worker(workspace: Workspace, voice: str, options: PrepareOptions, state: PrepareRun) -> None:
    """Thread body: run the engine, recording progress, log lines, the result or the exception."""
    try:
        from modules.prepare.pipeline import prepare_voice

        def on_progress(fraction: float, message: str) -> None:
            state.fraction, state.message = float(fraction), str(message)

        def on_log(line: str) -> None:
            state.lines.put(str(line).rstrip("\n"))

        state.result = prepare_voice(workspace, voice, options, progress=on_progress, log=on_log)
    except BaseException as exc:  # reported by the generator, never lost in the thread
        state.exception = exc
    finally:
        state.done.set()
