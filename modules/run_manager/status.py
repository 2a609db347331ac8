"""What a run is doing now, read from disk every time (a restarted UI reconnects from these).

``train.lock`` (held with ``flock`` by a live trainer) and the pid are the truth, ``status.json``
the trainer's own account, ``launcher.json`` the pid the UI started; ``run_summary`` is the row of
the runs list. Above ``discovery`` and ``probes``; ``process`` (launch, stop) builds on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modules.fileutil import read_json_dict
from modules.run_manager.discovery import list_states
from modules.run_manager.probes import lock_holder, pid_alive
from modules.trainer.runfolder import STARTUP_STOP_MESSAGE, RunPaths, launcher_paths
from modules.workspace import Workspace

ACTIVE_STATES = ("starting", "running")


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


def log_tail(run_dir: Path, lines: int = 40, *, prefer: str = "train.log") -> str:
    """The last ``lines`` console lines of a run: ``train.log``, else the launcher's log
    (``prefer="launcher"`` reverses the order).

    Carriage-return progress updates are collapsed to their last state."""
    run_dir = Path(run_dir)
    files = {"train.log": RunPaths(run_dir).log, "launcher": launcher_paths(run_dir)[1]}
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
    status = read_json_dict(RunPaths(run_dir).status) or {}
    launcher_json, launcher_log = launcher_paths(run_dir)
    launcher = read_json_dict(launcher_json) or {}
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
        if st.pid and pid_alive(st.pid) and not RunPaths(run_dir).lock.exists():
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


def _latest_state_step(run_dir: Path) -> int | None:
    states = list_states(run_dir)
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


def run_summary(ws: Workspace, run_dir: Path) -> dict[str, Any]:
    """What the runs list shows: dataset/run, model, command, state count and the last metrics."""
    from modules.run_manager.discovery import _run_model
    from modules.run_manager.metrics import last_records

    run_dir = Path(run_dir)
    st = run_status(run_dir)
    command = ""
    paths = RunPaths(run_dir)
    if paths.command.is_file():
        command = paths.command.read_text(encoding="utf-8", errors="replace").strip()
    model = _run_model(run_dir)
    train, val = last_records(paths.metrics)
    return {
        "run": f"{run_dir.parent.parent.name}/{run_dir.name}",
        "model": model or "",
        "state": st.state,
        "step": st.step,
        "states": len(list_states(run_dir)),
        "last train": _fmt_metrics(train),
        "last validation": _fmt_metrics(val),
        "command": command,
        "path": ws.relative(run_dir),
    }


_NON_METRIC = {"step", "epoch", "time", "elapsed", "validation", "samples_per_s"}


def _fmt_metrics(rec: dict[str, Any] | None) -> str:
    if not rec:
        return ""
    items = [(k, v) for k, v in rec.items() if k not in _NON_METRIC and isinstance(v, (int, float))
             and not k.startswith(("lr", "grad_norm"))]
    return ", ".join(f"{k} {v:.4g}" for k, v in items[:4])
