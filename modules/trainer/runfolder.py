"""The run folder ``training/NAME/runs/RUN/`` on disk: paths, lock, status, state list.

No torch here: the UI lists runs and states, reads status and checks the lock
with these helpers while the trainer (another process) writes them.

Layout (written by rank 0 only)::

    config.yaml  command.txt  train.log  metrics.jsonl  status.json  train.lock
    tensorboard/  checkpoints/  samples/step_XXXXXXXX/NAME.wav (+ NAME_ref.wav)
    states/step_XXXXXXXX.pt + states/step_XXXXXXXX.json (sidecar: step, epoch, time, train_loss, val_loss)
    diagnostics/  (non-finite loss reports)
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_RE = re.compile(r"^step_(\d{8,})\.pt$")


def state_name(step: int) -> str:
    return f"step_{int(step):08d}"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def command(self) -> Path:
        return self.root / "command.txt"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def lock(self) -> Path:
        return self.root / "train.lock"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def states(self) -> Path:
        return self.root / "states"

    @property
    def diagnostics(self) -> Path:
        return self.root / "diagnostics"

    def state_file(self, step: int) -> Path:
        return self.states / f"{state_name(step)}.pt"

    def sample_dir(self, step: int) -> Path:
        return self.samples / state_name(step)


def run_dir_for(dataset_dir: Path, config_path: Path | None, run_name: str | None) -> Path:
    """``DATASET/runs/RUN``: RUN is ``run_name`` or the config file's stem."""
    from modules.workspace import check_name

    name = run_name or (Path(config_path).stem if config_path else None)
    if not name:
        raise ValueError("a run needs run_name or a config file name")
    return Path(dataset_dir) / "runs" / check_name(name, "run")


@dataclass
class StateInfo:
    """One saved state as listed from its sidecar (no torch load)."""

    path: Path
    step: int
    epoch: float | None = None
    time: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None

    def label(self) -> str:
        parts = [f"step {self.step}"]
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch}")
        if self.val_loss is not None:
            parts.append(f"val {self.val_loss:.4g}")
        elif self.train_loss is not None:
            parts.append(f"loss {self.train_loss:.4g}")
        if self.time:
            parts.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(self.time)))
        return ", ".join(parts)


def list_states(run_dir: str | os.PathLike) -> list[StateInfo]:
    """States of a run, newest (highest step) first; sidecar values when present."""
    states_dir = Path(run_dir) / "states"
    out = []
    if not states_dir.is_dir():
        return out
    for p in states_dir.iterdir():
        m = STATE_RE.match(p.name)
        if not m:
            continue
        info = StateInfo(path=p, step=int(m.group(1)))
        side = p.with_suffix(".json")
        try:
            data = json.loads(side.read_text(encoding="utf-8"))
            info.epoch = data.get("epoch")
            info.time = data.get("time")
            info.train_loss = data.get("train_loss")
            info.val_loss = data.get("val_loss")
        except (OSError, ValueError):
            pass
        out.append(info)
    out.sort(key=lambda s: s.step, reverse=True)
    return out


def read_status(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``status.json`` as a dict (None when absent or unreadable)."""
    try:
        return json.loads((Path(run_dir) / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def lock_holder(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The lock's JSON (pid, started, ...) when a live trainer holds ``train.lock``, else None."""
    import fcntl

    path = Path(run_dir) / "train.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                try:
                    return json.loads(path.read_text(encoding="utf-8") or "{}")
                except (OSError, ValueError):
                    return {}
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RunLock:
    """``train.lock`` held with ``fcntl.flock`` while the trainer runs (released at exit)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self, info: dict[str, Any]) -> None:
        import fcntl

        from modules.errors import UserError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = lock_holder(self.path.parent) or {}
            pid = holder.get("pid", "?")
            raise UserError(f"{self.path.parent}: another trainer (pid {pid}) is running this run ({self.path.name} "
                            "is locked); stop it first, or set run_name to train into another folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode("utf-8"))
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        import fcntl

        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
