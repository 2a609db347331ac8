"""Browser test: the Generate Configuration tab's memory-fit check beside the batch field."""

from __future__ import annotations

from tests.app.test_ui_training import prepared, wait_until, ws  # noqa: F401
from tests.helpers.browser import gradio_ready, open_tab, ui  # noqa: F401  (fixture)


def test_check_memory_fit_shows_the_estimate(ui, ws):  # noqa: F811
    app = ui.start(ws.root)
    page = ui.page()
    page.goto(app.url)
    gradio_ready(page)
    open_tab(page, "Generate Configuration")
    assert page.locator("#cfg-dataset input").input_value() == "training/demo"
    page.locator("#cfg-fit-check").click()
    note = page.locator("#cfg-fit")
    wait_until(page, lambda: "estimated peak" in note.inner_text() or "rror" in note.inner_text(), 120,
               "the fit estimate")
    text = note.inner_text()
    assert "estimated peak" in text and "at batch 16" in text and "an estimate" in text, text
