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


def test_name_follows_model_until_typed_and_auto_derives_settings(ui, ws):  # noqa: F811
    app = ui.start(ws.root)
    page = ui.page(height=1200)
    page.goto(app.url)
    gradio_ready(page)
    open_tab(page, "Generate Configuration")
    name = page.locator("#cfg-name textarea, #cfg-name input").first
    assert name.input_value() == "demo-hifigan"
    assert page.locator("#cfg-hifigan-segment_size").is_visible()  # tuned up front
    assert not page.locator("#cfg-hifigan-upsample_rates").is_visible()  # architecture: under Advanced, collapsed
    page.locator("#cfg-model input[value=autoregressive]").check()
    wait_until(page, lambda: name.input_value() == "demo-autoregressive", 20, "the name following the model")
    page.locator("#cfg-model input[value=hifigan]").check()
    wait_until(page, lambda: name.input_value() == "demo-hifigan", 20, "the name following back")
    page.locator("#cfg-auto").click()
    report = page.locator("#cfg-report")
    wait_until(page, lambda: "Derived settings" in report.inner_text(), 60, "the derived settings")
    text = report.inner_text()
    assert "max_steps" in text and "min of audio" in text and "validate_every_steps" in text, text
    preview = page.locator("#cfg-preview")
    wait_until(page, lambda: "precision: auto" in preview.inner_text(), 20, "the preview")
    name.fill("mine")
    page.locator("#cfg-model input[value=autoregressive]").check()
    page.wait_for_timeout(1500)
    assert name.input_value() == "mine"  # typed: it no longer follows


def test_a_chosen_base_shows_its_sizes_read_only(ui, ws, shared):  # noqa: F811
    import shutil

    from tests.app.test_ui_training import choose

    folder = ws.models / "hifigan"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared / "compat" / "hifigan" / "generator_v2" / "g_00001234", folder / "g_00001234")
    shutil.copy(shared / "compat" / "hifigan" / "config_v2.json", folder / "config.json")
    app = ui.start(ws.root)
    page = ui.page(height=1200)
    page.goto(app.url)
    gradio_ready(page)
    open_tab(page, "Generate Configuration")
    page.locator("#cfg-group-hifigan-advanced").get_by_text("Advanced: HiFi-GAN vocoder").click()
    channels = page.locator("#cfg-hifigan-upsample_initial_channel input")
    assert channels.is_enabled()  # no base: editable
    choose(page, "cfg-base", "g_00001234")
    wait_until(page, lambda: channels.input_value() == "128" and not channels.is_enabled(), 30,
               "the base's size, read-only")
    assert "The base fixes" in page.locator("#cfg-message").inner_text()
