"""Shared pytest fixtures: the repo, ../shared/ fixtures, a scratch workspace."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DEMO_VOICE = REPO / "voices" / "demo"
ARTIFACTS = REPO / "test-artifacts"

@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/ fixtures are not present beside the checkout")
    return SHARED


@pytest.fixture
def workspace(tmp_path) -> Path:
    """An empty workspace with voices/, training/, models/."""
    root = tmp_path / "ws"
    for sub in ("voices", "training", "models"):
        (root / sub).mkdir(parents=True)
    return root


@pytest.fixture
def demo_workspace(workspace) -> Path:
    """A workspace holding a copy of the committed demo voice."""
    shutil.copytree(DEMO_VOICE, workspace / "voices" / "demo")
    return workspace


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def python_env() -> dict:
    """Environment for subprocesses running this checkout's code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (``CI=true``) a skip is a failure: CI installs every fixture, package, Chromium and
    espeak-ng the suite needs, so a skip there means a test silently stopped testing."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI", "").lower() == "true" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be missing: {reason}"
