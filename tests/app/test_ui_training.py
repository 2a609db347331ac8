"""Browser tests of the Configure and Run Training tabs on the demo voice (Playwright + Debian Chromium).

A tiny HiFi-GAN (custom generator, segment 2048) trains for real on the CPU; the tests drive the
UI like a user: generate and save a config, start it, watch the loss plot and validation audio,
stop, resume from a picked state, restart the UI mid-run, SIGKILL the trainer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from modules import run_manager as runs
from modules.workspace import Workspace
from tests.conftest import DEMO_VOICE
from tests.helpers.browser import gradio_ready, open_tab, ui  # noqa: F401  (fixture)
from tests.helpers.run_helpers import kill_active_trainers, prepare_demo

pytestmark = pytest.mark.skipif(not DEMO_VOICE.is_dir(), reason="voices/demo is missing")

TINY = {
    "model": "hifigan", "dataset": "training/demo", "batch_size": 2, "epochs": 100, "max_steps": 400,
    "num_workers": 0, "gpus": 0, "seed": 3, "save_every_steps": 2, "validate_every_steps": 4,
    "log_every_steps": 1, "keep_states": 5, "validation_samples": 1, "evaluation": {"enabled": False},
    "hifigan": {"preset": "custom", "segment_size": 2048, "upsample_rates": [8, 8, 4],
                "upsample_kernel_sizes": [16, 16, 8], "upsample_initial_channel": 32,
                "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]], "discriminator_width": 0.0625},
}
PLOT_POINTS_JS = """(el) => {
  let most = 0;
  for (const p of el.querySelectorAll('g.mark-line path')) {
    if (!p.getAttribute('stroke')) continue;  // a line without a colour is not drawn
    most = Math.max(most, ((p.getAttribute('d') || '').match(/[ML]/g) || []).length);
  }
  return most;
}"""
# what a LinePlot really draws: its legend entries and how many series lines have / lack a colour
# (Gradio keeps the colour domain of the first chart: a later series would be a line without a stroke)
PLOT_SERIES_JS = """(el) => {
  const legend = [...el.querySelectorAll('g.role-legend-label text')].map(t => t.textContent);
  let stroked = 0, bare = 0;
  for (const p of el.querySelectorAll('g.mark-line path')) {
    if (!(p.getAttribute('d') || '').includes('L')) continue;
    if (p.getAttribute('stroke')) stroked++; else bare++;
  }
  return {legend, stroked, bare};
}"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The demo voice prepared once (``prepare demo --transcriber none``)."""
    root = tmp_path_factory.mktemp("prepared")
    shutil.copytree(DEMO_VOICE, root / "voices" / "demo")
    prepare_demo(root)
    return root


@pytest.fixture
def ws(prepared, tmp_path):
    """A fresh workspace holding the prepared dataset; any trainer left running is killed afterwards."""
    root = tmp_path / "ws"
    shutil.copytree(prepared / "training" / "demo", root / "training" / "demo")
    for sub in ("voices", "models"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    w = Workspace.open(root)
    yield w
    kill_active_trainers(w)


def save_tiny(ws: Workspace, name: str = "tiny") -> Path:
    from modules.config.schema import config_from_dict, save_config

    return save_config(config_from_dict(TINY), ws.training / "demo" / "configs" / f"{name}.yaml")


# ---- page helpers ---------------------------------------------------------------------------------

def fill(page, elem_id: str, value) -> None:
    page.locator(f"#{elem_id}").locator("textarea, input").first.fill(str(value))


def choose(page, elem_id: str, text: str, timeout_s: float = 20) -> None:
    """Pick the dropdown option containing ``text``, typing it first as a user filtering a long list would.

    The timer may send new choices while the list is open; the dropdown then filters them by
    what the box holds, so a typed filter keeps the wanted option listed (a box still holding
    the old pick would hide it). Retries while the option has not arrived yet."""
    box = page.locator(f"#{elem_id} input[role=combobox]")
    end = time.monotonic() + timeout_s
    while True:
        box.click()
        box.fill(text)
        option = page.locator("li[role=option]:visible", has_text=text).first
        try:
            option.wait_for(state="visible", timeout=1500)
            option.click()
            return
        except Exception:
            page.keyboard.press("Escape")
            if time.monotonic() > end:
                raise
            page.wait_for_timeout(500)


def progress(page, timeout_ms: float = 30_000) -> dict:
    el = page.locator("#train-progress")
    return {k: el.get_attribute(f"data-{k}", timeout=timeout_ms) for k in ("state", "step", "pid")}


def _run_tab_state(page) -> str:
    """The Run tab's progress and message for a timeout message (another tab may be open: say so, at once)."""
    try:
        return (f"status: {progress(page, timeout_ms=1000)}; "
                f"message: {page.locator('#train-message').inner_text(timeout=1000)}")
    except Exception:  # noqa: BLE001 - only a message is built from it
        return "the Run tab is not open"


def wait_until(page, predicate, timeout_s: float, what: str):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(300)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; {_run_tab_state(page)}")


def wait_state(page, state: str, timeout_s: float = 90, min_step: int = -1) -> dict:
    def ok():
        p = progress(page)
        return p if p["state"] == state and int(p["step"] or -1) >= min_step else None

    return wait_until(page, ok, timeout_s, f"state {state} at step >= {min_step}")


def plot_points(page) -> int:
    return page.locator("#train-loss-plot").evaluate(PLOT_POINTS_JS)


def plot_series(page, elem_id: str) -> dict:
    return page.locator(f"#{elem_id}").evaluate(PLOT_SERIES_JS)


def all_series_drawn(page, elem_id: str, must_have: str) -> dict | None:
    """The plot's series when every line has a colour and a legend entry contains ``must_have``."""
    info = plot_series(page, elem_id)
    ok = info["bare"] == 0 and info["stroked"] >= len(info["legend"]) > 0 and any(
        must_have in t for t in info["legend"])
    return info if ok else None


def open_run_tab(page, app_url: str, config_label: str | None = None) -> None:
    page.goto(app_url)
    gradio_ready(page)
    open_tab(page, "Run Training")
    page.locator("#train-progress").wait_for()
    if config_label:
        if page.locator("#train-config input").input_value() != config_label:
            choose(page, "train-config", config_label)
        wait_until(page, lambda: page.locator("#train-config input").input_value() == config_label, 20,
                   "config picked")


def click_start(page) -> None:
    page.locator("#train-start").click()
    wait_until(page, lambda: "Started the trainer" in page.locator("#train-message").inner_text()
               or "Error" in page.locator("#train-message").inner_text(), 30, "start message")
    assert "Started the trainer" in page.locator("#train-message").inner_text()


def click_stop(page) -> str:
    page.locator("#train-stop").click()
    msg = page.locator("#train-message")
    wait_until(page, lambda: "and exited" in msg.inner_text() or "and was killed" in msg.inner_text(), 150,
               "stop message")
    return page.locator("#train-message").inner_text()


def resume_from(page, step: int) -> None:
    wait_until(page, lambda: page.locator("#train-start").is_enabled(), 20, "start enabled")
    choose(page, "train-resume", f"step {step} ")
    assert page.locator("#train-resume input").input_value().startswith(f"step {step} ")


def metrics_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if line.strip() and not json.loads(line).get("validation")]


# ---- tests ----------------------------------------------------------------------------------------

def test_configure_train_stop_resume(ui, ws, artifacts):  # noqa: F811
    app = ui.start(ws.root)
    page = ui.page(height=1100)
    page.goto(app.url)
    gradio_ready(page)

    # -- Generate Configuration: a tiny HiFi-GAN on the CPU, validated and saved through the schema
    open_tab(page, "Generate Configuration")
    assert page.locator("#cfg-dataset input").input_value() == "training/demo"
    fill(page, "cfg-name", "tiny")
    # the generator sizes are under "Advanced" (collapsed): open it as a user would
    page.locator("#cfg-group-hifigan-advanced").get_by_text("Advanced: HiFi-GAN vocoder").click()
    for key, value in [("hifigan-upsample_rates", "8, 8, 4"), ("hifigan-upsample_kernel_sizes", "[16, 16, 8]"),
                       ("hifigan-upsample_initial_channel", 32), ("hifigan-resblock_kernel_sizes", "[3]"),
                       ("hifigan-resblock_dilation_sizes", "[[1, 3]]"), ("hifigan-segment_size", 2048),
                       ("hifigan-discriminator_width", 0.0625), ("batch_size", 2), ("num_workers", 0),
                       ("gpus", 0), ("max_steps", 400), ("save_every_steps", 2), ("validate_every_steps", 4),
                       ("log_every_steps", 1), ("validation_samples", 1), ("keep_states", 5), ("seed", 3)]:
        fill(page, f"cfg-{key}", value)
    preview = page.locator("#cfg-preview")
    wait_until(page, lambda: "segment_size: 2048" in preview.inner_text() and "seed: 3" in preview.inner_text(),
               20, "YAML preview follows the form")
    assert "preset: custom" in preview.inner_text()
    page.locator("#cfg-validate").click()
    report = page.locator("#cfg-report")
    wait_until(page, lambda: "steps per epoch" in report.inner_text(), 60, "validate report")
    assert "| 14 |" in report.inner_html() or "14" in report.inner_text()  # 28 clips / batch 2
    page.locator("#cfg-lr-plot svg").first.wait_for()
    page.screenshot(path=str(artifacts / "configure.png"), full_page=True)
    page.locator("#cfg-save").click()
    wait_until(page, lambda: "Saved" in page.locator("#cfg-message").inner_text(), 30, "saved")
    saved = ws.training / "demo" / "configs" / "tiny.yaml"
    from modules.config.schema import load_config

    cfg = load_config(saved)
    assert cfg.hifigan.segment_size == 2048 and cfg.hifigan.upsample_initial_channel == 32
    assert cfg.max_steps == 400 and cfg.gpus == 0 and cfg.hifigan.preset == "custom"

    # loading it back fills the form (after clearing a field)
    fill(page, "cfg-hifigan-segment_size", 4096)
    choose(page, "cfg-saved", "demo/configs/tiny.yaml")
    page.locator("#cfg-load").click()
    wait_until(page, lambda: page.locator("#cfg-hifigan-segment_size input").input_value() == "2048", 20,
               "form filled from YAML")

    # -- Run Training: start, live loss plot, validation audio
    open_tab(page, "Run Training")
    choose(page, "train-config", "demo/configs/tiny.yaml")  # the saved config appears within a refresh
    click_start(page)
    wait_state(page, "running", 90, min_step=1)
    first = wait_until(page, lambda: plot_points(page) >= 2 and plot_points(page), 60, "loss points")
    wait_until(page, lambda: plot_points(page) > first, 60, "the loss plot gains points")

    sample = page.locator("#train-sample-0")
    sample.wait_for(state="visible", timeout=150_000)
    link = sample.locator("a.download-link").first
    wait_until(page, lambda: link.get_attribute("href"), 20, "audio source")
    audio = page.request.get(link.get_attribute("href"))
    assert audio.ok and audio.body()[:4] == b"RIFF" and audio.body()[8:12] == b"WAVE"
    assert page.locator("#train-sample-ref-0 a.download-link").count() == 1  # the reference beside it

    # -- Stop: the trainer saves a state and exits
    msg = click_stop(page)
    m = re.search(r"saved a state at step (\d+)", msg)
    assert m, msg
    saved_step = int(m.group(1))
    wait_state(page, "stopped", 30)
    wait_until(page, lambda: plot_points(page) >= saved_step - 1, 20, "the final curves drawn")
    # validation series are ticked in the picker and really drawn: coloured lines with legend entries
    ticked = [t for t in page.locator("#train-series label").all_inner_texts()]
    assert any("(validation)" in t for t in ticked), ticked
    try:
        drawn = wait_until(page, lambda: all_series_drawn(page, "train-loss-plot", "(validation)"), 20,
                           "validation series drawn in the loss plot")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; loss plot: {plot_series(page, 'train-loss-plot')}") from None
    assert "val_mel_l1 (validation)" in drawn["legend"] and "loss" not in drawn["legend"], drawn
    assert not any("pesq" in t for t in drawn["legend"]), drawn  # quality scores are on their own plot
    quality = wait_until(page, lambda: all_series_drawn(page, "train-quality-plot", "val_pesq_wb"), 20,
                         "the validation quality plot")
    assert quality["legend"] == ["val_pesq_wb (validation)"], quality
    page.wait_for_timeout(1000)  # let the last plot redraw settle before the screenshot
    page.screenshot(path=str(artifacts / "train.png"), full_page=True)
    run = ws.training / "demo" / "runs" / "tiny"
    assert (run / "states" / f"step_{saved_step:08d}.pt").is_file()

    # -- Resume from that state picked in the dropdown: the step continues from it
    resume_from(page, saved_step)
    before = len(metrics_steps(run))
    click_start(page)
    p = wait_state(page, "running", 90, min_step=saved_step + 1)
    assert int(p["step"]) > saved_step
    new_steps = metrics_steps(run)[before:]
    assert new_steps and new_steps[0] == saved_step + 1, new_steps
    assert f"step_{saved_step:08d}.pt" in (run / "train.log").read_text().split("resuming from")[-1][:300]
    assert "saved a state" in click_stop(page)

    # -- Try it: vocode a dataset clip with the newest checkpoint of the run and get playable audio
    page.locator("#train-try").get_by_text("Try it", exact=True).first.click()
    wait_until(page, lambda: page.locator("#train-try-ckpt input").input_value().startswith("g_"), 20,
               "newest exported checkpoint picked")
    assert "audio/" in page.locator("#train-try-clip").inner_text()  # the first dataset clip ticked
    page.locator("#train-try-run").click()
    wait_until(page, lambda: "Vocoded" in page.locator("#train-try-message").inner_text()
               or "Error" in page.locator("#train-try-message").inner_text(), 90, "vocoded")
    assert "Vocoded" in page.locator("#train-try-message").inner_text()
    href = page.locator("#train-try-out a.download-link").first.get_attribute("href")
    result = page.request.get(href)
    assert result.ok and result.body()[:4] == b"RIFF"



def test_ui_restart_reconnects_to_a_running_trainer(ui, ws):  # noqa: F811
    save_tiny(ws)
    app = ui.start(ws.root)
    page = ui.page()
    open_run_tab(page, app.url, "demo/configs/tiny.yaml")
    click_start(page)
    p = wait_state(page, "running", 90, min_step=1)
    pid = int(p["pid"])

    app.stop()  # Ctrl+C to the UI's process group: the trainer lives in its own session
    assert runs.pid_alive(pid) or runs.run_status(ws.training / "demo" / "runs" / "tiny").active
    app2 = ui.start(ws.root)
    page2 = ui.page()
    page2.goto(app2.url)
    gradio_ready(page2)
    open_tab(page2, "Run Training")
    # nothing clicked: the page load found the running run and picked its config
    p2 = wait_state(page2, "running", 30)
    assert int(p2["pid"]) == pid
    assert page2.locator("#train-config input").input_value() == "demo/configs/tiny.yaml"
    assert "Reconnected" in page2.locator("#train-message").inner_text()
    p3 = wait_state(page2, "running", 60, min_step=int(p2["step"]) + 1)
    # a second browser tab on the same run sees the same live run
    other = ui.page()
    open_run_tab(other, app2.url)
    p4 = wait_state(other, "running", 30, min_step=int(p3["step"]))
    assert p4["pid"] == p3["pid"] and other.locator("#train-config input").input_value() == "demo/configs/tiny.yaml"
    assert "saved a state" in click_stop(page2)
    wait_state(other, "stopped", 30)
    assert not runs.pid_alive(pid)


def test_sigkilled_trainer_shows_failure_and_resumes(ui, ws):  # noqa: F811
    save_tiny(ws)
    run = ws.training / "demo" / "runs" / "tiny"
    app = ui.start(ws.root)
    page = ui.page()
    open_run_tab(page, app.url, "demo/configs/tiny.yaml")
    click_start(page)
    p = wait_state(page, "running", 90, min_step=3)
    wait_until(page, lambda: runs.list_states(run), 60, "a saved state")
    pid = int(p["pid"])
    os.kill(pid, signal.SIGKILL)

    wait_state(page, "failed", 30)
    failure = page.locator("#train-failure")
    failure.wait_for(state="visible")
    text = failure.locator("textarea").input_value()
    assert "stopped without saving" in text and "last log lines" in text and "step " in text
    last = runs.list_states(run)[0].step

    resume_from(page, last)
    click_start(page)
    p = wait_state(page, "running", 90, min_step=last + 1)
    assert int(p["pid"]) != pid
    assert not failure.is_visible()
    assert "saved a state" in click_stop(page)

    # the runs list deletes old states after a confirmation
    assert len(runs.list_states(run)) > 1
    choose(page, "train-run-pick", "training/demo/runs/tiny")
    page.locator("#train-del-states").click()
    # the confirmation row appears once the queued click is served; on a loaded 2-core machine the
    # 2 s refresh timer can keep the queue busy for a while, so allow more than Playwright's default 30 s
    page.locator("#train-confirm").click(timeout=90_000)
    wait_until(page, lambda: "Removed" in page.locator("#train-runs-message").inner_text(), 20, "states removed")
    assert len(runs.list_states(run)) == 1
