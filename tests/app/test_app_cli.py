"""``python -m app``: its options, a fast import (no model code), and where the server binds."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, python_env
from tests.helpers.browser import start_app

HEAVY_MODULES = ["torch", "torchaudio", "whisper", "faster_whisper", "ctranslate2", "silero_vad", "onnxruntime",
                 "tensorboard", "tokenizers"]
TCP_LISTEN = "0A"


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=python_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_the_options() -> None:
    result = _run(["-m", "app", "--help"])
    assert result.returncode == 0, result.stderr
    for option in ("--port", "--listen", "--workspace"):
        assert option in result.stdout
    assert "7860" in result.stdout and "127.0.0.1" in result.stdout


def test_building_the_ui_imports_no_model_code(tmp_path: Path) -> None:
    """Importing app/* and building every tab loads gradio but none of torch, whisper, ..."""
    code = (
        "import json, sys\n"
        "import app, app.main, app.common, app.prepare_tab\n"
        "from modules.workspace import Workspace\n"
        f"demo = app.main.build_app(Workspace.open({str(tmp_path)!r}))\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\n"
        "print(json.dumps('gradio' in sys.modules))\n"
    )
    result = _run(["-c", code])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert json.loads(lines[-1]) is True  # the check ran against a real build
    assert json.loads(lines[-2]) == [], f"app start-up imported model code: {lines[-2]}"


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a listening TCP socket on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, port_hex = fields[1].split(":")
        if int(port_hex, 16) == port and fields[3] == TCP_LISTEN:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="needs Linux /proc/net/tcp")
def test_binds_localhost_by_default_and_all_interfaces_with_listen(workspace: Path, artifacts: Path) -> None:
    logs = artifacts / "logs" / "test_app_cli"
    shutil.rmtree(logs, ignore_errors=True)
    app = start_app(workspace, logs, via_env=True)  # workspace from $VOICETUNE_WORKSPACE
    try:
        assert _listening_addresses(app.port) == {"127.0.0.1"}
        log = app.wait_for_log(f"http://127.0.0.1:{app.port}/")
        assert f"workspace: {workspace.resolve()}" in log
    finally:
        app.stop()
    assert app.process.returncode is not None

    app = start_app(workspace, logs, extra_args=["--listen"])
    try:
        assert _listening_addresses(app.port) == {"0.0.0.0"}
    finally:
        app.stop()


def test_port_in_use_is_a_clear_error(workspace: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = _run(["-m", "app", "--workspace", str(workspace), "--port", str(port)])
    assert result.returncode == 2
    assert f"{port}" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr
