"""The CLI's real offline path for whisper models given by NAME that are not on disk.

Unlike test_prepare_transcribe.py these runs do NOT set HF_HUB_OFFLINE: the code really tries
to download, but every route out is closed (HF_ENDPOINT on a dead local port, an empty HF_HOME,
openai-whisper's own download URL forced through a dead or silent local proxy). The run must
fail quickly with a message saying where to put the files, never a traceback, never a hang.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, python_env

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused at once
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
              "NO_PROXY")


def offline_env(tmp_path: Path, proxy: str | None = None) -> dict:
    env = python_env()
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", *PROXY_VARS):
        env.pop(key, None)
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    env.update(HF_ENDPOINT=DEAD, HF_HOME=str(hf_home), XDG_CACHE_HOME=str(tmp_path / "xdg-cache"))
    if proxy:  # urllib (openai-whisper's downloader) honours these; its URL is not on HF_ENDPOINT
        env.update(http_proxy=proxy, https_proxy=proxy, HTTP_PROXY=proxy, HTTPS_PROXY=proxy)
    return env


def run_prepare(workspace: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    (workspace / "voices" / "demo" / "metadata.csv").unlink()  # so whisper is really needed
    return subprocess.run([sys.executable, "-m", "modules", "--workspace", str(workspace), "prepare", "demo", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def assert_clean_failure(proc: subprocess.CompletedProcess, workspace: Path) -> None:
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert "--transcriber none" in proc.stderr, proc.stderr[-2000:]
    assert not (workspace / "training" / "demo" / "train.txt").exists()


def test_faster_whisper_name_not_local_names_the_folder(demo_workspace, tmp_path):
    proc = run_prepare(demo_workspace, offline_env(tmp_path), "--model", "small")
    assert_clean_failure(proc, demo_workspace)
    assert "models/whisper/small/" in proc.stderr and "model.bin" in proc.stderr, proc.stderr[-2000:]
    assert str(demo_workspace / "models" / "whisper" / "small") in proc.stderr


def test_openai_whisper_name_not_local_names_the_file(demo_workspace, tmp_path):
    proc = run_prepare(demo_workspace, offline_env(tmp_path, proxy=DEAD), "--transcriber", "openai-whisper",
                       "--model", "tiny")
    assert_clean_failure(proc, demo_workspace)
    assert "tiny.pt" in proc.stderr and "models/whisper/" in proc.stderr, proc.stderr[-2000:]
    assert str(demo_workspace / "models" / "whisper") in proc.stderr
    assert not (demo_workspace / "models" / "whisper" / "tiny.pt").exists(), "no partial download left behind"


@pytest.fixture
def silent_proxy():
    """A TCP server that accepts connections and never answers: a network that black-holes traffic."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)  # the kernel completes the handshakes; nobody ever reads or replies
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        srv.close()


def test_openai_whisper_download_that_stalls_fails_instead_of_hanging(demo_workspace, tmp_path, silent_proxy):
    # urllib has no timeout of its own: without the stall timeout this run hangs past the subprocess timeout
    env = offline_env(tmp_path, proxy=silent_proxy)
    env["VOICETUNE_DOWNLOAD_TIMEOUT"] = "2"
    proc = run_prepare(demo_workspace, env, "--transcriber", "openai-whisper", "--model", "tiny")
    assert_clean_failure(proc, demo_workspace)
    assert "tiny.pt" in proc.stderr and "timed out" in proc.stderr.lower(), proc.stderr[-2000:]


def test_faster_whisper_hub_that_never_answers_fails_instead_of_hanging(demo_workspace, tmp_path, silent_proxy):
    # huggingface_hub lists repo files with no timeout: the endpoint is probed with a bounded request first
    env = offline_env(tmp_path)
    env.update(HF_ENDPOINT=silent_proxy, VOICETUNE_DOWNLOAD_TIMEOUT="2")
    proc = run_prepare(demo_workspace, env, "--model", "small")
    assert_clean_failure(proc, demo_workspace)
    assert "models/whisper/small/" in proc.stderr and "timed out" in proc.stderr.lower(), proc.stderr[-2000:]
