"""The trainer's console and ``train.log``: standard ``logging`` with one file handler.

Messages go to the logger ``voicetune`` (and its children, e.g. ``voicetune.autoregressive``).
While a run is open, ``RunLog`` shows them on the console as plain lines (``warning: ...`` /
``error: ...`` on stderr) and writes the same lines to the run's ``train.log``, which the Run tab
tails. A rank filter keeps every process but rank 0 quiet, except for its warnings and errors;
Python warnings are routed through it too.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

LOGGER = "voicetune"


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER}.{name}" if name else LOGGER)


class RankFilter(logging.Filter):
    """Rank 0 says everything; other ranks only their warnings and errors."""

    def __init__(self, rank: int):
        super().__init__()
        self.rank = int(rank)

    def filter(self, record: logging.LogRecord) -> bool:
        return self.rank == 0 or record.levelno >= logging.WARNING


class PlainFormatter(logging.Formatter):
    """The message as is; warnings and errors get a lower-case ``warning:`` / ``error:`` prefix."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING and not text.startswith(("warning:", "error:")):
            text = f"{record.levelname.lower()}: {text}"
        return text


class _ByLevel(logging.Filter):
    def __init__(self, below: int | None = None, at_least: int | None = None):
        super().__init__()
        self.below, self.at_least = below, at_least

    def filter(self, record: logging.LogRecord) -> bool:
        if self.below is not None and record.levelno >= self.below:
            return False
        return self.at_least is None or record.levelno >= self.at_least


class RunLog:
    """Handlers of one training process: console always, ``train.log`` once the run folder is owned."""

    def __init__(self, rank: int = 0):
        self.logger = get_logger()
        self.rank = rank
        self.file: logging.FileHandler | None = None
        fmt, ranks = PlainFormatter(), RankFilter(rank)
        out = logging.StreamHandler(sys.stdout)
        out.addFilter(_ByLevel(below=logging.WARNING))
        err = logging.StreamHandler(sys.stderr)
        err.addFilter(_ByLevel(at_least=logging.WARNING))
        self.console = [out, err]
        for h in self.console:
            h.setFormatter(fmt)
            h.addFilter(ranks)
        self._saved = (self.logger.level, self.logger.propagate, list(self.logger.handlers))
        self.logger.handlers = list(self.console)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        logging.captureWarnings(True)
        self._warnings = logging.getLogger("py.warnings")
        self._warnings.addHandler(err)

    def open_file(self, path: Path) -> None:
        """Append every line from now on to ``path`` (rank 0 owns the run folder and calls this)."""
        self.file = logging.FileHandler(path, encoding="utf-8")
        self.file.setFormatter(PlainFormatter())
        self.file.addFilter(RankFilter(self.rank))
        self.logger.addHandler(self.file)
        self._warnings.addHandler(self.file)

    def write_raw(self, text: str) -> None:
        """Text for the log file only (a traceback: the console gets it from the re-raise)."""
        if self.file is not None:
            self.file.acquire()
            try:
                self.file.stream.write(text if text.endswith("\n") else text + "\n")
                self.file.flush()
            finally:
                self.file.release()

    def write_traceback(self) -> None:
        self.write_raw(traceback.format_exc())

    def close(self) -> None:
        for h in [*self.console, *([self.file] if self.file else [])]:
            h.flush()
            self._warnings.removeHandler(h)
        if self.file is not None:
            self.file.close()
            self.file = None
        level, propagate, handlers = self._saved
        self.logger.handlers = handlers
        self.logger.setLevel(level)
        self.logger.propagate = propagate
        logging.captureWarnings(False)
