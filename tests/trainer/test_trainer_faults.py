"""Faults a long run meets, on the real trainer with the toy recipe: leftovers of killed writes,
a full disk, refused resumes and TensorBoard across resumes. Each test fails without its fix."""

from __future__ import annotations

import json

import pytest

from modules.errors import UserError
from modules.fileutil import FAULT_ENV, TEMP_PREFIX
from modules.trainer.runfolder import list_states, read_status
from tests.trainer.test_trainer_core import train, ws  # noqa: F401  (ws is a fixture)


def test_temp_files_of_killed_writes_are_removed_at_the_next_start(ws):  # noqa: F811
    rc, run = train(ws, "tmp", "max_steps=4")
    assert rc == 0
    leftovers = [run / "states" / f"{TEMP_PREFIX}abc", run / "checkpoints" / f"{TEMP_PREFIX}def",
                 run / f"{TEMP_PREFIX}status"]
    for p in leftovers:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half a state")
    orphan = run / "states" / "step_00000002.json"  # a sidecar whose state was pruned
    orphan.write_text("{}")
    assert [s.step for s in list_states(run)] == [4]  # never taken for a state
    rc, run = train(ws, "tmp", "max_steps=8", resume="latest")
    assert rc == 0
    assert not any(p.exists() for p in leftovers) and not orphan.exists()
    assert "removed 4 unfinished write(s)" in (run / "train.log").read_text()
    assert not list(run.rglob(f"{TEMP_PREFIX}*"))


def test_a_full_disk_stops_with_exit_5_and_keeps_the_previous_state(ws, monkeypatch):  # noqa: F811
    rc, run = train(ws, "full", "max_steps=4", "keep_states=5")
    assert rc == 0
    before = (run / "states" / "step_00000004.pt").read_bytes()
    monkeypatch.setenv(FAULT_ENV, "enospc:/states/step_00000008")  # the real writer fails as on a full disk
    rc, run = train(ws, "full", "max_steps=8", "keep_states=5", resume="latest")
    assert rc == 5
    status = read_status(run)
    assert status["state"] == "failed" and "no space left on " in status["message"], status
    assert "free " in status["message"] and "a state needs about" in status["message"], status
    assert "step_00000004.pt" in status["message"]
    assert (run / "states" / "step_00000004.pt").read_bytes() == before
    assert not (run / "states" / "step_00000008.pt").exists() and not list(run.rglob(f"{TEMP_PREFIX}*"))
    assert "error: no space left" in (run / "train.log").read_text()
    monkeypatch.delenv(FAULT_ENV)
    rc, _ = train(ws, "full", "max_steps=8", "keep_states=5", resume="latest")  # resumable once space is back
    assert rc == 0 and read_status(run)["step"] == 8


def test_a_refused_resume_leaves_status_json_as_it_was(ws):  # noqa: F811
    rc, run = train(ws, "keep", "max_steps=4")
    assert rc == 0
    status = (run / "status.json").read_text()
    with pytest.raises(UserError, match="no such state file"):
        train(ws, "keep", "max_steps=8", resume=str(run / "states" / "step_00000099.pt"))
    with pytest.raises(UserError, match="the config changed"):
        train(ws, "keep", "max_steps=8", "learning_rate=0.5", resume="latest")
    assert (run / "status.json").read_text() == status
    assert json.loads(status)["state"] == "finished"


def test_tensorboard_keeps_every_step_across_resumes(ws):  # noqa: F811
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(ws, "tb", "max_steps=4", "save_every_steps=2")
    train(ws, "tb", "max_steps=6", "save_every_steps=2", resume="latest")
    rc, run = train(ws, "tb", "max_steps=8", "save_every_steps=2", resume="latest")
    assert rc == 0
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    steps = sorted({e.step for e in acc.Scalars("train/loss")})
    assert steps == list(range(1, 9)), steps
