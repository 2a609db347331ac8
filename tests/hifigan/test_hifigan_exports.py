"""The Run tab's "Write exports" brings back a run's jik876 files from its newest state."""

from __future__ import annotations

import time

from modules import run_manager as runs
from modules.workspace import Workspace
from tests.helpers.hifigan_helpers import demo_src, run_dir, tiny_config, train, ws  # noqa: F401


def test_write_exports_from_the_runs_list(ws):  # noqa: F811
    assert train(ws, tiny_config(max_steps=2, save_every_steps=2)) == 0
    run = run_dir(ws)
    g = run / "checkpoints" / "g_00000002"
    g.unlink()
    res = runs.write_exports(Workspace.open(ws), run)
    assert "--export-only" in res.command
    end = time.monotonic() + 180
    while runs.pid_alive(res.pid) and time.monotonic() < end:
        time.sleep(0.1)
    assert g.is_file(), runs.log_tail(run, 20)
    assert runs.run_status(run).state == "finished"
