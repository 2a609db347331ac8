"""SIGKILL soak: a real trainer process killed at seeded random moments, two of them while a state
is being written, resumed each time. Nothing may be lost or torn, and the result must equal a run
that was never killed (states are saved at every step and resume restores every RNG)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import torch

from modules import run_manager as runs
from modules.fileutil import FAULT_ENV, TEMP_PREFIX
from modules.trainer.runfolder import RunPaths, list_states, read_status
from tests.conftest import REPO, python_env
from tests.trainer.test_trainer_core import cli, make_config, ws  # noqa: F401  (ws is a fixture)

RECIPE = "tests.helpers.trainer_toy:ToyRecipe"
SETS = ["max_steps=24", "save_every_steps=1", "keep_states=3", "validate_every_steps=6", "log_every_steps=1"]


def _env(slow_writes: bool) -> dict:
    env = python_env()
    if slow_writes:  # a state write takes 0.3 s, so a kill can land inside one
        env[FAULT_ENV] = "slow:/states/step_:0.3"
    return env


def _start(ws, path, resume: bool) -> subprocess.Popen:
    args = ["train", str(path), "--recipe", RECIPE] + (["--resume", "latest"] if resume else [])
    return subprocess.Popen(cli(ws, *args), cwd=REPO, env=_env(True), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _writing(run) -> bool:
    states = run / "states"
    return states.is_dir() and any(p.name.startswith(TEMP_PREFIX) for p in states.glob("*"))


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def test_sigkill_soak_loses_nothing(ws):  # noqa: F811
    _, ref_path = make_config(ws, "reference", *SETS)
    ref = subprocess.run(cli(ws, "train", str(ref_path), "--recipe", RECIPE), cwd=REPO, env=_env(False),
                         capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]
    _, path = make_config(ws, "soak", *SETS)
    run = ws.root / "training" / "toy" / "runs" / "soak"
    rng = random.Random(20261201)
    during_write = 0
    for kill in range(5):
        proc = _start(ws, path, resume=bool(list_states(run)))
        if kill in (1, 3):  # wait for a state write in progress, then kill inside it
            end = time.monotonic() + 60
            while proc.poll() is None and not _writing(run) and time.monotonic() < end:
                time.sleep(0.01)
            during_write += _writing(run)
        else:
            time.sleep(rng.uniform(2.0, 6.0))
        assert proc.poll() is None, "the run ended before it could be killed"
        _kill(proc)
    assert during_write == 2, "two kills must land inside a state write"
    # resume when a state was completed (on a slow machine every kill can land before the first one)
    proc = _start(ws, path, resume=bool(list_states(run)))
    assert proc.wait(timeout=300) == 0

    # every state and checkpoint loads; no temp file is left
    for s in list_states(run):
        torch.load(s.path, weights_only=False)
    for ck in (run / "checkpoints").glob("*.pt"):
        torch.load(ck, weights_only=False)
    assert not list(run.rglob(f"{TEMP_PREFIX}*"))
    # no resume ever met a torn state (a write without temp file + rename leaves one when killed)
    assert "unreadable" not in (run / "train.log").read_text()
    # metrics as the UI reads them: each step once, in order
    frame = runs.read_metrics(RunPaths(run).metrics).train
    assert frame["step"].tolist() == list(range(1, 25))
    status = read_status(run)
    assert status["state"] == "finished" and status["step"] == 24
    # the same weights as the run that was never killed
    a = torch.load(list_states(ws.root / "training" / "toy" / "runs" / "reference")[0].path, weights_only=False)
    b = torch.load(list_states(run)[0].path, weights_only=False)
    for model in a["models"]:
        for key, value in a["models"][model].items():
            assert torch.equal(value, b["models"][model][key]), (model, key)
