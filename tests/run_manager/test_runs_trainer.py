"""modules.run_manager against the real trainer (tiny HiFi-GAN on the demo voice, CPU, no browser):
launch detached, the trainer's own lock, stop with a saved state, resume latest, SIGKILL -> failed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from modules import run_manager as runs
from modules.config.schema import config_from_dict, save_config
from modules.errors import UserError
from modules.trainer.runfolder import launcher_paths
from modules.workspace import Workspace
from tests.conftest import DEMO_VOICE, REPO, python_env
from tests.helpers.run_helpers import kill_active_trainers, prepare_demo

pytestmark = pytest.mark.skipif(not DEMO_VOICE.is_dir(), reason="voices/demo is missing")

TINY = {
    "model": "hifigan", "dataset": "training/demo", "batch_size": 2, "epochs": 100, "max_steps": 400,
    "num_workers": 0, "gpus": 0, "seed": 5, "save_every_steps": 2, "validate_every_steps": None,
    "log_every_steps": 1, "keep_states": 3, "validation_samples": 1, "evaluation": {"enabled": False},
    "hifigan": {"preset": "custom", "segment_size": 2048, "upsample_rates": [8, 8, 4],
                "upsample_kernel_sizes": [16, 16, 8], "upsample_initial_channel": 32,
                "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]], "discriminator_width": 0.0625},
}


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(DEMO_VOICE, root / "voices" / "demo")
    prepare_demo(root)
    w = Workspace.open(root)
    yield w
    kill_active_trainers(w)


def _wait(predicate, timeout=120.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_launch_lock_stop_resume_and_kill_with_the_real_trainer(ws):
    cfg = save_config(config_from_dict(TINY), ws.training / "demo" / "configs" / "tiny.yaml")
    res = runs.launch(ws, cfg)
    run = res.run_dir
    assert run == ws.training / "demo" / "runs" / "tiny"
    assert runs.run_status(run).active  # "starting" at once, before the trainer has its lock
    with pytest.raises(UserError, match="already training"):
        runs.launch(ws, cfg)
    st = _wait(lambda: (s := runs.run_status(run)).state == "running" and (s.step or 0) >= 2 and s, what="steps")
    assert st.pid == res.pid and runs.lock_holder(run) == res.pid

    # a trainer started behind the UI's back is refused by the trainer's own lock
    other = subprocess.run([sys.executable, "-m", "modules", "--workspace", str(ws.root), "train", str(cfg),
                            "--resume", "latest"], cwd=REPO, env=python_env(), capture_output=True, text=True,
                           timeout=120)
    assert other.returncode != 0 and "another trainer" in other.stderr

    result = runs.stop(run, timeout=120)
    assert result.outcome == "saved", result
    assert runs.run_status(run).state == "stopped"
    assert runs.list_states(run)[0].step == result.step

    res2 = runs.launch(ws, cfg, resume="latest")
    _wait(lambda: (runs.run_status(run).step or 0) > result.step and runs.run_status(run).state == "running",
          what="resumed steps")
    assert f"step {result.step}" in (run / "train.log").read_text().split("resuming from")[-1][:400]
    os.kill(res2.pid, signal.SIGKILL)
    st = _wait(lambda: (s := runs.run_status(run)).state == "failed" and s, 30, "failed")
    assert "killed or crashed" in st.message and "step" in st.log_tail

    # starting fresh on a run with states keeps the old folder under a new name (--fresh)
    res3 = runs.launch(ws, cfg)
    assert "--fresh" in res3.command
    _wait(lambda: (s := runs.run_status(run)).state == "running" and (s.step or 0) >= 1, what="fresh run steps")
    moved = [p for p in runs.list_runs(ws) if p.name.startswith("tiny-")]
    assert len(moved) == 1 and runs.list_states(moved[0])
    assert runs.stop(run, timeout=120).outcome == "saved"
    assert "launching" in launcher_paths(run)[1].read_text()
