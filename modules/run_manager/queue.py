"""The job queue: training runs that start one after another, kept in ``training/queue.json``.

Why a file: the queue outlives the UI (a restart shows the same queue) and the command line and
the Run tab edit the same one. One runner works through it (``python -m modules queue run``, which
the Run tab starts detached when a job is added); it holds ``training/.queue-runner.lock``, runs each
job's ``python -m modules train`` in the foreground and records how it ended. A failed job is marked
failed and the next one starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from modules.errors import UserError
from modules.fileutil import atomic_write_json, read_json_dict
from modules.workspace import REPO_ROOT, Workspace

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def queue_path(ws: Workspace) -> Path:
    return ws.training / "queue.json"


@contextlib.contextmanager
def _locked(ws: Workspace) -> Iterator[None]:
    """Every read-modify-write of the queue file under one flock (UI threads, CLI, the runner)."""
    ws.training.mkdir(parents=True, exist_ok=True)
    with open(ws.training / ".queue.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read(ws: Workspace) -> list[dict[str, Any]]:
    data = read_json_dict(queue_path(ws)) or {}
    return [j for j in data.get("jobs", []) if isinstance(j, dict) and j.get("config")]


def _write(ws: Workspace, jobs: list[dict[str, Any]]) -> None:
    atomic_write_json(queue_path(ws), {"jobs": jobs})


def jobs(ws: Workspace) -> list[dict[str, Any]]:
    """Every job, in queue order (finished ones stay listed until removed)."""
    with _locked(ws):
        return _read(ws)


def add(ws: Workspace, config: str | os.PathLike, resume: str | None = None, gpus: int | None = None
        ) -> dict[str, Any]:
    """Queue ``config`` (a YAML inside the workspace); returns the job."""
    path = ws.inside(config)
    if not path.is_file():
        raise UserError(f"{config}: no such config file; save one in the Generate Configuration tab")
    job = {"id": uuid.uuid4().hex[:8], "config": ws.relative(path), "resume": resume or None, "gpus": gpus,
           "state": QUEUED, "added": time.time()}
    with _locked(ws):
        _write(ws, _read(ws) + [job])
    return job


def _index(all_jobs: list[dict[str, Any]], n: int) -> int:
    if not 1 <= n <= len(all_jobs):
        raise UserError(f"queue: there is no job {n} (the queue holds {len(all_jobs)}); see `queue list`")
    return n - 1


def remove(ws: Workspace, n: int) -> dict[str, Any]:
    """Take job ``n`` (1-based, as ``list`` numbers them) off the queue; a running job is refused."""
    with _locked(ws):
        all_jobs = _read(ws)
        i = _index(all_jobs, n)
        if all_jobs[i]["state"] == RUNNING:
            raise UserError(f"queue: job {n} is running; stop it in the Run tab first")
        job = all_jobs.pop(i)
        _write(ws, all_jobs)
    return job


def move(ws: Workspace, n: int, to: int) -> None:
    """Put job ``n`` at position ``to`` (both 1-based)."""
    with _locked(ws):
        all_jobs = _read(ws)
        job = all_jobs.pop(_index(all_jobs, n))
        all_jobs.insert(max(0, min(len(all_jobs), to - 1)), job)
        _write(ws, all_jobs)


def _update(ws: Workspace, job_id: str, **values: Any) -> None:
    with _locked(ws):
        all_jobs = _read(ws)
        for j in all_jobs:
            if j["id"] == job_id:
                j.update(values)
        _write(ws, all_jobs)


def _take_next(ws: Workspace) -> dict[str, Any] | None:
    """The first queued job, marked running (atomically, so two runners never take the same one)."""
    with _locked(ws):
        all_jobs = _read(ws)
        for j in all_jobs:
            if j["state"] == QUEUED:
                j.update(state=RUNNING, started=time.time(), runner=os.getpid())
                _write(ws, all_jobs)
                return dict(j)
    return None


def mark_interrupted(ws: Workspace) -> None:
    """Jobs left "running" by a runner that is gone (killed, machine restarted) are failed."""
    from modules.run_manager.probes import pid_alive

    with _locked(ws):
        all_jobs = _read(ws)
        for j in all_jobs:
            if j["state"] == RUNNING and not pid_alive(j.get("runner")):
                j.update(state=FAILED, ended=time.time(), message="the queue runner stopped while this job ran")
        _write(ws, all_jobs)


class RunnerLock:
    """``training/.queue-runner.lock``: one runner per workspace."""

    def __init__(self, ws: Workspace):
        self.path = ws.training / ".queue-runner.lock"
        self.fh = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            self.fh = None
            return False
        return True

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def runner_active(ws: Workspace) -> bool:
    lock = RunnerLock(ws)
    if lock.acquire():
        lock.release()
        return False
    return True


def run_queue(ws: Workspace, log: Callable[[str], None] = print) -> int:
    """Work through the queue until no job is queued; returns how many jobs ran (0 when another
    runner is already at work)."""
    from modules.run_manager.process import build_train_command

    lock = RunnerLock(ws)
    if not lock.acquire():
        log("another queue runner is working through this workspace's queue")
        return 0
    ran = 0
    try:
        mark_interrupted(ws)
        while True:
            while (job := _take_next(ws)) is not None:
                ran += 1
                _run_job(ws, job, build_train_command, log)
            lock.release()
            # a job added while this runner was leaving found it still holding the lock and started none
            if not any(j["state"] == QUEUED for j in jobs(ws)) or not lock.acquire():
                break
    finally:
        lock.release()
    return ran


def _run_job(ws: Workspace, job: dict[str, Any], build_train_command: Any, log: Callable[[str], None]) -> None:
    """One job in the foreground; any failure (even a config path that no longer resolves) fails it only."""
    try:
        cmd = build_train_command(ws, ws.inside(job["config"]), job.get("resume"), job.get("gpus"))
        log(f"queue: starting {job['config']} ({' '.join(cmd[3:])})")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        code = subprocess.run(cmd, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL).returncode
        _update(ws, job["id"], state=DONE if code == 0 else FAILED, exit=code, ended=time.time())
        log(f"queue: {job['config']} {'finished' if code == 0 else f'failed (exit {code})'}")
    except Exception as exc:  # noqa: BLE001 - the next job must still run
        _update(ws, job["id"], state=FAILED, ended=time.time(), message=f"{type(exc).__name__}: {exc}")
        log(f"queue: {job['config']} failed before it started ({exc})")


def start_runner(ws: Workspace) -> int | None:
    """Start ``queue run`` detached (it outlives the UI) unless a runner works already; its pid."""
    if runner_active(ws):
        return None
    log_path = ws.training / "queue.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "modules", "--workspace", str(ws.root), "queue", "run"],
                                cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    return proc.pid
