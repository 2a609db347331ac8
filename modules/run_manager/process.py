"""Launch, probe, stop and reconnect to trainer processes.

The trainer runs as a detached process (its own session and process group) so
that a UI restart never kills it. What a run is doing is read from disk every
time: ``train.lock`` (held with ``flock`` by a live trainer), ``status.json``
(the trainer's own account) and ``launcher.json`` (the pid we started, written
before the trainer has a chance to take the lock).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modules.errors import UserError
from modules.fileutil import atomic_write_json
from modules.trainer import runfolder
from modules.trainer.runfolder import STARTUP_STOP_MESSAGE
from modules.trainer.runfolder import proc_locks_usable as _proc_locks_usable  # noqa: F401 (tests check the mode)
from modules.workspace import REPO_ROOT, Workspace

LAUNCHER_DIR = ".launcher"  # beside the run folders: the trainer may rename a run folder (--fresh)
ACTIVE_STATES = ("starting", "running")
# children this process launched, so they are reaped (a zombie would look alive) and exit codes known
_CHILDREN: dict[int, tuple[subprocess.Popen, Path]] = {}
_CHILDREN_LOCK = threading.Lock()  # the UI's timer callbacks probe from several threads at once
_LAUNCH_LOCK = threading.Lock()


@dataclass
class RunStatus:
    """What a run is doing now, merged from the lock, status.json and the launcher record."""

    state: str  # idle | starting | running | finished | stopped | failed
    pid: int | None = None
    step: int | None = None
    epoch: float | None = None
    total_steps: int | None = None
    steps_per_epoch: int | None = None
    message: str = ""
    started: float | None = None
    updated: float | None = None
    log_tail: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass
class LaunchResult:
    pid: int
    run_dir: Path
    command: list[str]
    log_path: Path


@dataclass
class StopResult:
    outcome: str  # saved | killed | finished | failed | exited | not running
    message: str
    step: int | None = None


def launcher_paths(run_dir: Path) -> tuple[Path, Path]:
    """``runs/.launcher/RUN.json`` (pid, start time, command, exit code) and ``RUN.log`` (stdout/stderr).

    Kept outside the run folder so a trainer that moves the folder aside (``--fresh``) or fails
    before creating it still leaves its output where the UI looks."""
    run_dir = Path(run_dir)
    base = run_dir.parent / LAUNCHER_DIR / run_dir.name
    return base.with_suffix(".json"), base.with_suffix(".log")


# --- probes -------------------------------------------------------------------------------------

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


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def log_tail(run_dir: Path, lines: int = 40, *, prefer: str = "train.log") -> str:
    """The last ``lines`` console lines of a run: ``train.log``, else the launcher's log
    (``prefer="launcher"`` reverses the order).

    Carriage-return progress updates are collapsed to their last state."""
    run_dir = Path(run_dir)
    files = {"train.log": run_dir / "train.log", "launcher": launcher_paths(run_dir)[1]}
    for name in [prefer] + [n for n in files if n != prefer]:
        text = _tail_text(files[name], lines)
        if text:
            return text
    return ""


def _tail_text(path: Path, lines: int, max_bytes: int = 65536) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    out = [ln.rsplit("\r", 1)[-1] if "\r" in ln.rstrip("\r") else ln.rstrip("\r") for ln in data.split("\n")]
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out[-lines:])


def run_status(run_dir: Path, tail_lines: int = 30) -> RunStatus:
    """Reconnect to a run from disk: the lock and pid are the truth, ``status.json`` the details.

    A status saying ``running`` whose process is gone (SIGKILL, crash, power loss) is ``failed``
    with the log tail, so the user sees what happened and can resume from the last state."""
    run_dir = Path(run_dir)
    status = _read_json(run_dir / "status.json") or {}
    launcher_json, launcher_log = launcher_paths(run_dir)
    launcher = _read_json(launcher_json) or {}
    holder = lock_holder(run_dir)
    st = RunStatus(
        state=str(status.get("state") or "idle"),
        pid=_int(status.get("pid")),
        step=_int(status.get("step")),
        epoch=_float(status.get("epoch")),
        total_steps=_int(status.get("total_steps")),
        steps_per_epoch=_int(status.get("steps_per_epoch")),
        message=str(status.get("message") or ""),
        started=_float(status.get("started")),
        updated=_float(status.get("updated")),
        raw=status,
    )
    launched_pid = _int(launcher.get("pid"))
    launched_at = _float(launcher.get("started")) or 0.0
    status_is_newer = bool(status) and (st.updated or st.started or 0.0) >= launched_at - 1.0

    if holder is not None:
        st.pid = holder or st.pid
        if st.state != "running" or not status_is_newer:
            st.state = "running" if status_is_newer else "starting"
        return st
    if launched_pid and pid_alive(launched_pid):
        # our process is up but holds no lock: still starting, or saving and exiting
        if not (status_is_newer and st.state in ("finished", "stopped", "failed")):
            st.state, st.pid = "starting", launched_pid
        return st
    if st.state == "running":
        if st.pid and pid_alive(st.pid) and not (run_dir / "train.lock").exists():
            return st  # a trainer that does not use the lock file (should not happen)
        stop_req = launcher.get("stop_requested") or {}
        if stop_req.get("pid") == st.pid and not st.step:
            st.state = "stopped"  # SIGTERM during start-up: there was nothing to save yet
            st.message = STARTUP_STOP_MESSAGE
            return st
        st.state = "failed"
        st.message = (f"The trainer (pid {st.pid}) stopped without saving a final state: it was killed or "
                      f"crashed at step {st.step}. Resume from the last saved state.")
        st.log_tail = _failure_tail(run_dir, tail_lines)
        return st
    if launched_pid and launched_at and not status_is_newer:
        code = launcher.get("returncode")
        if (launcher.get("stop_requested") or {}).get("pid") == launched_pid:
            # stopped before it held the lock (so before it wrote any status): nothing to save
            st.state, st.pid, st.message = "stopped", launched_pid, STARTUP_STOP_MESSAGE
            return st
        st.state = "failed" if code not in (0, None) or not status else st.state
        if st.state == "failed":
            st.message = ("The trainer exited before it started training"
                          + (f" (exit code {code})" if code is not None else "") + "; see the log below.")
            st.log_tail = _tail_text(launcher_log, tail_lines)
        return st
    if st.state == "failed":
        st.log_tail = _failure_tail(run_dir, tail_lines)
    return st


def _failure_tail(run_dir: Path, lines: int) -> str:
    """The launcher log holds stderr (tracebacks); fall back to train.log."""
    return log_tail(run_dir, lines, prefer="launcher")


# --- launch -------------------------------------------------------------------------------------

def build_train_command(ws: Workspace, config_path: Path, resume: str | None = None, gpus: int | None = None,
                        python: str | None = None, extra: list[str] | None = None) -> list[str]:
    """``python -m modules --workspace ROOT train CONFIG [--resume R] [--gpus N]`` (the CLI's own form)."""
    cmd = [python or sys.executable, "-m", "modules", "--workspace", str(ws.root), "train", str(config_path)]
    if resume:
        cmd += ["--resume", str(resume)]
    if gpus is not None and int(gpus) > 0:
        cmd += ["--gpus", str(int(gpus))]
    return cmd + list(extra or [])


def launch(ws: Workspace, config_path: str | os.PathLike, resume: str | None = None, gpus: int | None = None,
           *, python: str | None = None, extra: list[str] | None = None) -> LaunchResult:
    """Start a trainer detached from this process; refuse when the run is already training.

    ``resume``: None/"" to start fresh, "latest", or a state path inside the workspace. Starting
    fresh on a run that has states passes ``--fresh``: the trainer keeps the old folder under a
    new name (``RUN-YYYYmmdd-HHMMSS``) instead of refusing."""
    from modules.run_manager.discovery import run_dir_for_config

    config_path = ws.inside(config_path)
    if not config_path.is_file():
        raise UserError(f"{config_path}: config file not found; save it in the Configure tab first")
    run_dir = run_dir_for_config(ws, config_path)
    if resume and resume != "latest":
        resume_path = ws.inside(resume)
        if not resume_path.is_file():
            raise UserError(f"{resume}: state file not found; pick a state from the resume list")
        resume = str(resume_path)
    extra = list(extra or [])
    if not resume and runfolder.list_states(run_dir) and "--fresh" not in extra:
        extra.append("--fresh")
    cmd = build_train_command(ws, config_path, resume, gpus, python, extra)
    with _LAUNCH_LOCK:  # two browser tabs pressing Start at once must not both launch
        st = run_status(run_dir)
        if st.active:
            raise UserError(
                f"run {run_dir.parent.parent.name}/{run_dir.name} is already training (pid {st.pid}, "
                f"step {st.step}); stop it first, or give the new config another run_name"
            )
        return spawn_detached(run_dir, cmd)


def spawn_detached(run_dir: Path, cmd: list[str]) -> LaunchResult:
    """Run ``cmd`` in its own session/process group, output appended to the launcher log,
    and record its pid in the launcher JSON (``launcher_paths``) so a restarted UI finds it again."""
    json_path, log_path = launcher_paths(run_dir)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    started = time.time()
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} launching: {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env, close_fds=True)
    with _CHILDREN_LOCK:
        _CHILDREN[proc.pid] = (proc, run_dir)
    atomic_write_json(json_path, {"pid": proc.pid, "started": started, "command": cmd})
    return LaunchResult(proc.pid, run_dir, cmd, log_path)


def _record_exit_code(run_dir: Path, pid: int, code: int) -> None:
    """Keep a finished child's exit code in launcher.json (a failed start has no status.json)."""
    json_path = launcher_paths(run_dir)[0]
    data = _read_json(json_path) or {}
    if data.get("pid") == pid and data.get("returncode") is None:
        data["returncode"] = code
        try:
            atomic_write_json(json_path, data)
        except OSError:
            pass


# --- stop ---------------------------------------------------------------------------------------

def stop(run_dir: Path, timeout: float = 60.0, poll: float = 0.25) -> StopResult:
    """SIGTERM the trainer's process group, wait for it to save and exit, SIGKILL after ``timeout``.

    Returns which happened so the UI can say "saved a state at step N" or "killed"."""
    run_dir = Path(run_dir)
    st = run_status(run_dir)
    if not st.active:
        return StopResult("not running", f"Nothing to stop: the run is {st.state}.", st.step)
    pid = st.pid
    if not pid or not pid_alive(pid):
        return StopResult("not running", "The trainer process is already gone.", st.step)
    _note_stop_request(run_dir, pid)
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid) and lock_holder(run_dir) is None:
            break
        time.sleep(poll)
    else:
        _signal_group(pid, signal.SIGKILL)
        end = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < end:
            time.sleep(0.1)
        states = _latest_state_step(run_dir)
        return StopResult("killed", f"The trainer did not exit within {timeout:.0f} s and was killed; "
                                    f"the last saved state is step {states}." if states is not None else
                          f"The trainer did not exit within {timeout:.0f} s and was killed; no state was saved.",
                          states)
    after = run_status(run_dir)
    if after.state == "stopped" and after.message == STARTUP_STOP_MESSAGE:
        return StopResult("exited", after.message, after.step)
    if after.state == "stopped":
        return StopResult("saved", f"The trainer saved a state at step {after.step} and exited.", after.step)
    if after.state == "finished":
        return StopResult("finished", f"The run had just finished at step {after.step}.", after.step)
    if after.state == "failed":
        return StopResult("failed", after.message or "The trainer failed while stopping.", after.step)
    return StopResult("exited", f"The trainer exited (state {after.state}).", after.step)


def _note_stop_request(run_dir: Path, pid: int) -> None:
    """Remember that the user asked this pid to stop (a trainer killed by SIGTERM before it
    installed its handler then reads as stopped, not crashed)."""
    json_path = launcher_paths(run_dir)[0]
    data = _read_json(json_path) or {}
    data["stop_requested"] = {"pid": pid, "time": time.time()}
    try:
        atomic_write_json(json_path, data)
    except OSError:
        pass


def _signal_group(pid: int, sig: int) -> None:
    """Signal the trainer's whole process group (torchrun and its ranks), never our own group."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    try:
        if pgid != os.getpgrp():
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _latest_state_step(run_dir: Path) -> int | None:
    states = runfolder.list_states(run_dir)
    return states[0].step if states else None


def _int(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def _float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None
