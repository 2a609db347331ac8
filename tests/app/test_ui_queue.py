"""Browser test of the job queue: three runs added from the Run tab run one after another (the
broken one fails without blocking the next), and the queue is still there after a UI restart."""

from __future__ import annotations

import copy
import json

from modules.config.schema import config_from_dict, save_config
from tests.app.test_ui_training import TINY, choose, open_run_tab, prepared, wait_until, ws  # noqa: F401
from tests.helpers.browser import ui  # noqa: F401  (fixture)
from tests.helpers.run_helpers import kill_active_trainers


def _rows(page) -> list[list[str]]:
    """(number, state, config) of each row, read from the table's text (Gradio renders its rows lazily)."""
    tokens = [t.strip() for t in page.locator("#train-queue-table").inner_text().split("\n") if t.strip()]
    return [[tokens[i - 2], tokens[i - 1], t] for i, t in enumerate(tokens) if t.endswith(".yaml") and i >= 2]


def test_queue_runs_in_order_and_survives_a_restart(ui, ws):  # noqa: F811
    configs = ws.training / "demo" / "configs"
    for name, over in (("q1", {}), ("qbroken", {"dataset": "training/nowhere"}), ("q3", {})):
        cfg = copy.deepcopy(TINY)
        cfg.update(max_steps=2, save_every_steps=2, **over)
        save_config(config_from_dict(cfg), configs / f"{name}.yaml")
    app = ui.start(ws.root)
    page = ui.page(height=1400)
    open_run_tab(page, app.url)
    message = page.locator("#train-queue-message")
    for name in ("q1", "qbroken", "q3"):
        choose(page, "train-config", f"demo/configs/{name}.yaml")
        page.locator("#train-queue-add").click()
        wait_until(page, lambda n=name: f"{n}.yaml" in message.inner_text(), 20, f"{name} queued")
    final = wait_until(page, lambda: (lambda r: r if len(r) == 3 and all(x[1] in ("done", "failed") for x in r)
                                      else None)(_rows(page)), 240, "the three queued runs")
    assert [(r[1], r[2].split("/")[-1]) for r in final] == [("done", "q1.yaml"), ("failed", "qbroken.yaml"),
                                                              ("done", "q3.yaml")]
    jobs = json.loads((ws.training / "queue.json").read_text())["jobs"]
    assert jobs[0]["ended"] <= jobs[1]["started"] and jobs[1]["ended"] <= jobs[2]["started"]

    app.stop()  # a UI restart: the queue is the file, not the page
    again = ui.start(ws.root)
    page2 = ui.page(height=1400)
    open_run_tab(page2, again.url)
    wait_until(page2, lambda: len(_rows(page2)) == 3, 30, "the queue after the restart")
    assert [r[1] for r in _rows(page2)] == ["done", "failed", "done"]
    kill_active_trainers(ws)
