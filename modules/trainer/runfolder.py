"""The run folder ``training/NAME/runs/RUN/`` on disk: paths, lock, status, state list.

No torch here: the UI lists runs and states, reads status and checks the lock
with these helpers while the trainer (another process) writes them.

Layout (written by rank 0 only)::

    config.yaml  command.txt  train.log  metrics.jsonl  status.json  train.lock
    tensorboard/  checkpoints/  samples/step_XXXXXXXX/NAME.wav (+ NAME_ref.wav, samples.json)
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

from modules.fileutil import read_json_dict

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

    def sample_info(self, step: int) -> Path:
        """What rendered each validation clip of a step (written beside the clips)."""
        return self.sample_dir(step) / "samples.json"

    def state_file(self, step: int) -> Path:
        return self.states / f"{state_name(step)}.pt"

    def sample_dir(self, step: int) -> Path:
        return self.samples / state_name(step)


LAUNCHER_DIR = ".launcher"


def launcher_paths(run_dir: Path) -> tuple[Path, Path]:
    """``runs/.launcher/RUN.json`` (pid, start time, command, exit code) and ``RUN.log`` (stdout/stderr).

    Kept outside the run folder so a trainer that moves the folder aside (``--fresh``) or fails
    before creating it still leaves its output where the UI looks."""
    run_dir = Path(run_dir)
    base = run_dir.parent / LAUNCHER_DIR / run_dir.name
    return base.with_suffix(".json"), base.with_suffix(".log")


def run_dir_for(dataset_dir: Path, config_path: Path | None, run_name: str | None) -> Path:
    """``DATASET/runs/RUN``: RUN is ``run_name`` or the config file's stem."""
    from modules.workspace import check_name

    name = run_name or (Path(config_path).stem if config_path else None)
    if not name:
        raise ValueError("a run needs run_name or a config file name")
    return Path(dataset_dir) / "runs" / check_name(name, "run")


@dataclass(frozen=True)
class StateInfo:
    """One saved state as listed from its sidecar (never the big ``.pt`` file)."""

    path: Path
    step: int
    epoch: float | None = None
    time: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    score: float | None = None  # the validation score of its step (modules.evaluation), once scored

    def label(self) -> str:
        """A one-line description for the resume dropdown: step, epoch, loss, time."""
        parts = [f"step {self.step}"]
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch:.4g}")
        if self.val_loss is not None:
            parts.append(f"val loss {self.val_loss:.4g}")
        elif self.train_loss is not None:
            parts.append(f"train loss {self.train_loss:.4g}")
        if self.score is not None:
            parts.append(f"score {self.score:.3f}")
        if self.time:
            parts.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(self.time)))
        return " · ".join(parts)


def list_states(run_dir: str | os.PathLike) -> list[StateInfo]:
    """The run's ``states/step_*.pt``, newest (highest step) first, described by their sidecars.

    The step comes from the file name (what ``state_file`` names); sidecar values are
    coerced to floats (a missing, torn or odd sidecar leaves them None) and the time
    falls back to the file's mtime. A state pruned while listing is skipped."""
    states_dir = Path(run_dir) / "states"
    if not states_dir.is_dir():
        return []
    out = []
    for pt in states_dir.iterdir():
        m = STATE_RE.match(pt.name)
        if not m:
            continue
        side = _read_sidecar(pt.with_suffix(".json"))
        when = _opt_float(side.get("time"))
        if not when:
            try:
                when = pt.stat().st_mtime
            except OSError:
                continue  # pruned by the trainer just now
        out.append(StateInfo(path=pt, step=int(m.group(1)), epoch=_opt_float(side.get("epoch")), time=when,
                             train_loss=_opt_float(side.get("train_loss")), val_loss=_opt_float(side.get("val_loss")),
                             score=_opt_float(side.get("val_score"))))
    out.sort(key=lambda s: s.step, reverse=True)
    return out


def _read_sidecar(path: Path) -> dict[str, Any]:
    return read_json_dict(path) or {}


def _opt_float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


# status.json ``message`` of a trainer stopped before its first step; the UI reports it as is
STARTUP_STOP_MESSAGE = "Stopped during start-up, before the first training step: there was nothing to save."


def read_status(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``status.json`` as a dict (None when absent or unreadable)."""
    return read_json_dict(RunPaths(Path(run_dir)).status)


# --- who holds train.lock -----------------------------------------------------------------------

def _lock_key(path: Path) -> str:
    """How /proc/locks names a file: ``MAJOR:MINOR:INODE`` (hex device numbers)."""
    st = os.stat(path)
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"


def _proc_locks() -> set[str] | None:
    """Keys of files with an active (granted, not waiting) flock, from /proc/locks; None if unavailable."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    keys = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and "->" not in parts and parts[1] == "FLOCK":
            keys.add(parts[5])
    return keys


_PROC_LOCKS_OK: dict[int, bool] = {}


def proc_locks_usable(folder: str | os.PathLike) -> bool:
    """Whether /proc/locks names files of ``folder``'s filesystem as ``os.stat`` does.

    Checked once per filesystem with a lock of our own on a temp file (overlay
    filesystems may report other device numbers); False where /proc/locks is missing."""
    import fcntl
    import tempfile

    dev = os.stat(folder).st_dev
    if dev not in _PROC_LOCKS_OK:
        ok = False
        try:
            fd, tmp = tempfile.mkstemp(prefix=".lockcheck-", dir=folder)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                ok = _lock_key(Path(tmp)) in (_proc_locks() or set())
            finally:
                os.close(fd)
                os.unlink(tmp)
        except OSError:
            ok = False
        _PROC_LOCKS_OK[dev] = ok
    return _PROC_LOCKS_OK[dev]


def lock_holder(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The lock's JSON (pid, started, ...; ``{}`` when unreadable) while a live process holds
    the run's ``train.lock``, else None.

    Reads /proc/locks where that works, so probing never takes the lock itself: a
    trainer starting at that instant must not find it taken. Elsewhere it probes with a
    non-blocking shared ``flock`` (two probes never collide with each other). The file
    is never created, and the lock of a dead process reads as free (the kernel drops it)."""
    path = Path(run_dir) / "train.lock"
    if not path.is_file():
        return None
    try:
        if proc_locks_usable(path.parent):
            return _lock_info(path) if _lock_key(path) in (_proc_locks() or set()) else None
    except OSError:
        pass
    return _flock_probe(path)


def _flock_probe(path: Path) -> dict[str, Any] | None:
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _lock_info(path)
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _lock_info(path: Path) -> dict[str, Any]:
    return read_json_dict(path) or {}


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
