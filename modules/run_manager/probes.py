"""Is a trainer alive? Lock and pid probes, and the table of children this process launched.

The lowest layer of ``run_manager``: it reads only the run folder (``modules.trainer.runfolder``)
and ``/proc``; ``status`` and ``process`` build on it.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from modules.fileutil import atomic_write_json, read_json_dict
from modules.trainer import runfolder
from modules.trainer.runfolder import launcher_paths

# children this process launched, so they are reaped (a zombie would look alive) and exit codes known
_CHILDREN: dict[int, tuple[subprocess.Popen, Path]] = {}
_CHILDREN_LOCK = threading.Lock()  # the UI's timer callbacks probe from several threads at once


def register_child(proc: subprocess.Popen, run_dir: Path) -> None:
    """Remember a trainer this process started (``pid_alive`` reaps it and records its exit code)."""
    with _CHILDREN_LOCK:
        _CHILDREN[proc.pid] = (proc, Path(run_dir))


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` is a running (not zombie) process; reaps our own finished children."""
    if not pid or pid <= 0:
        return False
    with _CHILDREN_LOCK:
        child = _CHILDREN.get(pid)
        code = child[0].poll() if child is not None else None
        if code is not None:
            del _CHILDREN[pid]
    if code is not None:
        _record_exit_code(child[1], pid, code)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def lock_holder(run_dir: Path) -> int | None:
    """The pid holding the run's ``train.lock`` (0 when the lock file is unreadable), or None when
    nobody holds it; ``modules.trainer.runfolder.lock_holder`` does the probing (it never takes
    the lock itself where /proc/locks works)."""
    info = runfolder.lock_holder(run_dir)
    if info is None:
        return None
    try:
        return int(info.get("pid") or 0)
    except (TypeError, ValueError):
        return 0


def _record_exit_code(run_dir: Path, pid: int, code: int) -> None:
    """Keep a finished child's exit code in launcher.json (a failed start has no status.json)."""
    json_path = launcher_paths(run_dir)[0]
    data = read_json_dict(json_path) or {}
    if data.get("pid") == pid and data.get("returncode") is None:
        data["returncode"] = code
        try:
            atomic_write_json(json_path, data)
        except OSError:
            pass
