"""Helpers shared by the tests that launch real trainer processes (``test_runs_trainer``,
``test_ui_training``): prepare the demo voice and clean up trainers a test left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from modules import run_manager as runs
from modules.workspace import Workspace
from tests.conftest import REPO, python_env


def prepare_demo(root: Path) -> None:
    """``prepare demo --transcriber none`` in the workspace ``root`` (which holds ``voices/demo``)."""
    subprocess.run([sys.executable, "-m", "modules", "--workspace", str(root), "prepare", "demo",
                    "--transcriber", "none"], cwd=REPO, env=python_env(), check=True, capture_output=True,
                   timeout=300)


def kill_active_trainers(ws: Workspace) -> None:
    """SIGKILL the process group of every run still training, so a failed test leaves no trainer behind."""
    for run in runs.list_runs(ws):
        st = runs.run_status(run)
        if st.active and st.pid:
            try:
                os.killpg(os.getpgid(st.pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
