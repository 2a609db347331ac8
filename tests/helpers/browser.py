"""Shared helpers for browser tests: run ``python -m app`` as a subprocess and drive Debian's Chromium.

Browser tests use the ``ui`` fixture (or ``start_app`` / ``launch_browser`` directly)::

    from tests.helpers.browser import ui  # noqa: F401  (re-export the fixture into the test module)

    def test_x(ui, demo_workspace):
        app = ui.start(demo_workspace)
        page = ui.page()
        page.goto(app.url)

Chromium is the Debian one at ``/usr/bin/chromium``; Playwright never downloads a browser
(see ``../shared/STACK_NOTES.md``). Tests skip cleanly where Chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import REPO, python_env

CHROMIUM = os.environ.get("VOICETUNE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
START_TIMEOUT_S = 90.0  # the app starts in ~5 s alone; allow for a busy shared machine


def free_port() -> int:
    """A TCP port nobody listens on right now (the app binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AppProcess:
    """A running ``python -m app`` subprocess and where to reach it."""

    process: subprocess.Popen
    port: int
    workspace: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def log(self) -> str:
        """Everything the app printed so far (stdout and stderr), for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 30.0) -> str:
        """Wait until the app has printed ``text`` (it prints its URL just after the server is up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.2)
        raise TimeoutError(f"the app did not print {text!r} within {timeout:.0f} s; its log:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Interrupt the app (like Ctrl+C), then kill its process group if it lingers."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGINT)
            self.process.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=timeout)


def wait_for_http(url: str, process: subprocess.Popen | None = None, timeout: float = START_TIMEOUT_S) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"app exited with code {process.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last_error = exc
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s (last error: {last_error})")


def start_app(workspace: Path, log_dir: Path, extra_args: list[str] | None = None,
              env: dict[str, str] | None = None, port: int | None = None, via_env: bool = False) -> AppProcess:
    """Start ``python -m app --workspace WORKSPACE --port PORT`` in its own process group and wait for it.

    ``via_env`` passes the workspace as ``$VOICETUNE_WORKSPACE`` instead of ``--workspace``.
    """
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"app-{port}.log"
    run_env = python_env()
    run_env.update({"GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"})
    run_env.pop("VOICETUNE_WORKSPACE", None)
    if via_env:
        run_env["VOICETUNE_WORKSPACE"] = str(workspace)
    run_env.update(env or {})
    where = [] if via_env else ["--workspace", str(workspace)]
    command = [sys.executable, "-m", "app", *where, "--port", str(port), *(extra_args or [])]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, cwd=REPO, env=run_env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    app = AppProcess(process, port, Path(workspace), log_path)
    try:
        wait_for_http(app.url, process)
    except Exception as exc:
        app.stop()
        raise RuntimeError(f"{exc}\n--- app log ---\n{app.log()}") from exc
    return app


def chromium_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).is_file()


def launch_browser(playwright: Any):
    """Debian's Chromium through Playwright, headless, as ../shared/STACK_NOTES.md describes."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@dataclass
class UISession:
    """What the ``ui`` fixture hands a test: start apps, open pages; everything is stopped afterwards."""

    log_dir: Path
    _playwright: Any = None
    _browser: Any = None
    apps: list[AppProcess] = field(default_factory=list)
    _contexts: list[Any] = field(default_factory=list)

    def start(self, workspace: Path, extra_args: list[str] | None = None,
              env: dict[str, str] | None = None, port: int | None = None, via_env: bool = False) -> AppProcess:
        app = start_app(workspace, self.log_dir, extra_args, env, port, via_env)
        self.apps.append(app)
        return app

    def browser(self):
        if self._browser is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = launch_browser(self._playwright)
        return self._browser

    def page(self, width: int = 1400, height: int = 1000):
        """A fresh page in its own context (like a separate browser tab with its own session)."""
        context = self.browser().new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(30_000)
        self._contexts.append(context)
        return context.new_page()

    def close(self) -> None:
        for context in self._contexts:
            try:
                context.close()
            except Exception:
                pass
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()
        for app in self.apps:
            app.stop()


@pytest.fixture
def ui(artifacts: Path, request) -> Iterator[UISession]:
    """Start apps and Chromium pages for one test; stops them all afterwards, keeping the app logs."""
    if not chromium_available():
        pytest.skip(f"browser tests need Playwright and Chromium at {CHROMIUM} (apt-get install chromium)")
    log_dir = artifacts / "logs" / request.node.name
    shutil.rmtree(log_dir, ignore_errors=True)  # keep only the latest run's app logs
    session = UISession(log_dir=log_dir)
    try:
        yield session
    finally:
        session.close()


def open_tab(page, name: str) -> None:
    """Click a top-level tab by its exact label (substring matches hit Gradio's footer buttons)."""
    page.get_by_role("tab", name=name, exact=True).click()


def gradio_ready(page, timeout: float = 60_000) -> None:
    """Wait until Gradio has rendered the app (the tab strip is there)."""
    page.locator("#voicetune-tabs").wait_for(state="visible", timeout=timeout)
