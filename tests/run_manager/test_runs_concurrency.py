"""The UI's status refreshes come from many threads at once (timers of several browser tabs):
they must never raise while a trainer starts, trains and exits."""

from __future__ import annotations

import threading
import time

from modules import model_registry
from modules import run_manager as runs
from modules.trainer.runfolder import RunPaths
from modules.workspace import Workspace
from tests.test_model_plugin import toy_ws  # noqa: F401 (fixture)


def test_concurrent_status_refreshes_while_a_trainer_starts_and_exits(toy_ws, monkeypatch):  # noqa: F811
    monkeypatch.setenv("VOICETUNE_MODELS", "toy=tests.helpers.toy_model:SPEC")
    model_registry.register("tests.helpers.toy_model:SPEC", name="toy")
    try:
        from modules.config.schema import apply_overrides, default_config, save_config

        ws = Workspace.open(toy_ws)
        cfg = apply_overrides(default_config("toy", "training/demo"),
                              ["max_steps=30", "gpus=0", "num_workers=0", "save_every_steps=5",
                               "validate_every_steps=10", "log_every_steps=1"])
        path = save_config(cfg, toy_ws / "training" / "demo" / "configs" / "busy.yaml")
        run = runs.run_dir_for_config(ws, path)
        errors: list[BaseException] = []
        calls = [0]
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    st = runs.run_status(run)
                    runs.pid_alive(st.pid)
                    runs.run_summary(ws, run)
                    runs.list_states(run)
                    runs.read_metrics(RunPaths(run).metrics)
                    runs.log_tail(run, 20)
                    runs.list_runs(ws)
                    calls[0] += 1
                except BaseException as exc:  # noqa: BLE001 - collected and reported below
                    errors.append(exc)

        threads = [threading.Thread(target=hammer, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        launched = runs.launch(ws, path)
        end = time.monotonic() + 180
        seen = set()
        while time.monotonic() < end:
            state = runs.run_status(run).state
            seen.add(state)
            if state in ("finished", "failed"):
                break
            time.sleep(0.05)
        time.sleep(0.5)  # keep refreshing after the exit
        stop.set()
        for t in threads:
            t.join(timeout=10)
        assert not errors, repr(errors[:3])
        final = runs.run_status(run)
        assert final.state == "finished", (final, runs.log_tail(run, 30))
        end = time.monotonic() + 30  # "finished" is written just before the process exits
        while runs.pid_alive(launched.pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert not runs.pid_alive(launched.pid)
        assert calls[0] > 50 and "running" in seen, (calls[0], seen)
    finally:
        model_registry.unregister("toy")
