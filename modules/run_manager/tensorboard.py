"""Start TensorBoard on a run folder, bound to 127.0.0.1, once per run."""

from __future__ import annotations

import atexit
import socket
import subprocess
import sys
import time
from pathlib import Path

from modules.errors import UserError

_SERVERS: dict[str, tuple[subprocess.Popen, str]] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_tensorboard(run_dir: Path, port: int | None = None, wait_s: float = 30.0) -> str:
    """Start (or reuse) TensorBoard for ``RUN/tensorboard`` and return its URL once it answers."""
    logdir = Path(run_dir) / "tensorboard"
    if not logdir.is_dir():
        raise UserError(f"{logdir}: no TensorBoard logs yet; start the run and wait for its first log step")
    key = str(logdir.resolve())
    if key in _SERVERS:
        proc, url = _SERVERS[key]
        if proc.poll() is None:
            return url
        del _SERVERS[key]
    port = port or _free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", key, "--host", "127.0.0.1", "--port", str(port)]
    log = open(Path(run_dir) / "tensorboard.log", "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"TensorBoard exited (code {proc.returncode}); see {Path(run_dir) / 'tensorboard.log'}")
        if _port_open(port):
            _SERVERS[key] = (proc, url)
            return url
        time.sleep(0.3)
    proc.terminate()
    raise UserError(f"TensorBoard did not answer on port {port} within {wait_s:.0f} s; see tensorboard.log")


@atexit.register
def stop_all_tensorboards() -> None:
    """TensorBoard servers belong to this UI process: stop them with it."""
    for proc, _ in list(_SERVERS.values()):
        if proc.poll() is None:
            proc.terminate()
    _SERVERS.clear()
