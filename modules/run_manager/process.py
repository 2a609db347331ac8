"""Launch and stop trainer processes.

The trainer runs as a detached process (its own session and process group) so
that a UI restart never kills it; ``launcher.json`` records the pid we started,
written before the trainer has a chance to take the lock. What a run is doing is
``modules.run_manager.status``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from modules.errors import UserError
from modules.fileutil import atomic_write_json, read_json_dict
from modules.run_manager.discovery import run_dir_for_config
from modules.run_manager.probes import lock_holder, pid_alive, register_child
from modules.run_manager.status import _latest_state_step, run_status
from modules.trainer import runfolder
from modules.trainer.runfolder import STARTUP_STOP_MESSAGE, launcher_paths
from modules.workspace import REPO_ROOT, Workspace

_LAUNCH_LOCK = threading.Lock()


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
    register_child(proc, run_dir)
    atomic_write_json(json_path, {"pid": proc.pid, "started": started, "command": cmd})
    return LaunchResult(proc.pid, run_dir, cmd, log_path)


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
    data = read_json_dict(json_path) or {}
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


