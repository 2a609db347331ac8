"""Browser test: an autoregressive run's validation samples and Try it, rendered by tortoise's decoders.

A tiny UnifiedVoice trains on the CPU with small random decoders placed where users put tortoise's
files (models/tortoise/); the Run tab must label each sample with the decoder that rendered it and
play 24 kHz audio, and Try it must stream speech from the fast decoder.
"""

from __future__ import annotations

import io

import pytest
import soundfile as sf

from modules.workspace import Workspace
from tests.app.test_ui_training import choose, wait_until
from tests.autoregressive.test_ar_recipe import make_ar_workspace, train
from tests.helpers.browser import gradio_ready, open_tab, ui  # noqa: F401  (fixture)
from tests.helpers.decoder_helpers import write_small_decoders
from tests.helpers.run_helpers import kill_active_trainers
from tests.hifidecoder.test_decoder_recipe import train as train_decoder


@pytest.fixture
def ar_ws(tmp_path, shared):
    root = make_ar_workspace(tmp_path / "ws")
    write_small_decoders(root / "models" / "tortoise")
    sets = ["max_steps=2", "validate_every_steps=2", "save_every_steps=2", "validation_samples=2",
            "autoregressive.diffusion_steps=4"]
    train(root, "gpt_fast", sets + ["autoregressive.decoder=fast"])
    train(root, "gpt_standard", sets + ["autoregressive.decoder=standard"])
    # the second stage: tortoise's fast decoder fine-tuned on the fine-tuned GPT's own latents
    train_decoder(root, "decoder", ["max_steps=2", "validate_every_steps=2", "save_every_steps=2",
                                    "hifidecoder.gpt_checkpoint=training/demo/runs/gpt_fast"])
    yield root
    kill_active_trainers(Workspace.open(root))


def _wav(page, locator) -> tuple[int, int]:
    href = locator.locator("a.download-link").first.get_attribute("href")
    body = page.request.get(href).body()
    wave, rate = sf.read(io.BytesIO(body))
    return rate, len(wave)


def test_samples_and_try_it_name_their_decoder(ui, ar_ws, artifacts):  # noqa: F811
    app = ui.start(ar_ws)
    page = ui.page(height=1200)
    page.goto(app.url)
    gradio_ready(page)
    open_tab(page, "Run Training")
    page.locator("#train-progress").wait_for()
    for name, label in (("gpt_standard", "tortoise standard decoder"), ("gpt_fast", "tortoise fast decoder")):
        choose(page, "train-config", f"demo/configs/{name}.yaml")
        sample = page.locator("#train-sample-0")
        sample.wait_for(state="visible", timeout=60_000)
        wait_until(page, lambda label=label, sample=sample: label in sample.inner_text(), 30,
                   f"{label} in the sample label")
        assert label in page.locator("#train-sample-note").inner_text()
        rate, n = _wav(page, sample)
        assert rate == 24000 and n > 0
        ref_rate, _ = _wav(page, page.locator("#train-sample-ref-0"))
        assert ref_rate == 22050
    page.screenshot(path=str(artifacts / "train_ar_decoders.png"), full_page=True)

    # a decoder run: its own rendering at 24 kHz beside the base decoder's rendering of the same codes
    choose(page, "train-config", "demo/configs/decoder.yaml")
    sample = page.locator("#train-sample-0")
    wait_until(page, lambda: "this run's decoder at step 2" in sample.inner_text(), 60, "the decoder run's sample")
    assert _wav(page, sample)[0] == 24000 and _wav(page, page.locator("#train-sample-ref-0"))[0] == 24000
    base = page.locator("#train-sample-1")
    assert "base decoder hifidecoder.pth" in base.inner_text() and _wav(page, base)[0] == 24000
    page.screenshot(path=str(artifacts / "train_hifidecoder.png"), full_page=True)
    choose(page, "train-config", "demo/configs/gpt_fast.yaml")
    wait_until(page, lambda: "tortoise fast decoder" in page.locator("#train-sample-0").inner_text(), 60,
               "back on the GPT run")

    # Try it: speak through the fast decoder; the live player streams, the result is a 24 kHz wav
    page.locator("#train-try").get_by_text("Try it", exact=True).first.click()
    wait_until(page, lambda: page.locator("#train-try-ckpt input").input_value().endswith("_gpt.pth (export)"),
               20, "newest exported checkpoint picked")
    msg = page.locator("#train-try-message")
    box = page.locator("#train-try-text textarea")
    spoken = "Hello there, this is a test."
    for _ in range(10):  # a refresh of the panel can replace the box between typing and the click
        box.fill(spoken)
        box.press("Tab")
        page.wait_for_timeout(500)
        if box.input_value() == spoken:
            break
    page.locator("#train-try-run").click()
    wait_until(page, lambda: "Spoke with" in msg.inner_text() or "Error" in msg.inner_text(), 120, "spoken")
    text = msg.inner_text()
    assert "Spoke with" in text and "tortoise fast decoder" in text, text
    rate, n = _wav(page, page.locator("#train-try-out"))
    assert rate == 24000 and n > 0
    import re

    played = int(page.evaluate("document.body.dataset.vtLiveChunks || '0'"))
    sent = int(re.search(r"\((\d+) chunk\(s\) played", text).group(1))
    assert sent >= 2 and 1 <= played <= sent, (played, sent)  # the browser queued the chunks as they came
    page.screenshot(path=str(artifacts / "try_it_ar.png"), full_page=True)
