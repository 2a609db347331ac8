"""Will the batch fit: the CPU estimate, the dry run's out-of-memory search, ``config check --fit``."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from modules.config.schema import config_from_dict, save_config
from modules.trainer.fit import OOM_TEST_ENV, fit_check
from modules.workspace import Workspace
from tests.conftest import REPO, python_env
from tests.helpers.hifigan_helpers import demo_src, tiny_config, ws  # noqa: F401


def test_cpu_estimate_is_finite_and_grows_with_the_batch(ws):  # noqa: F811
    small = fit_check(config_from_dict(tiny_config(batch_size=1)), Workspace.open(ws))
    big = fit_check(config_from_dict(tiny_config(batch_size=8)), Workspace.open(ws), search=True)
    assert small.device == big.device == "cpu" and small.estimated and small.step_seconds is None
    assert math.isfinite(small.peak_memory_bytes) and 0 < small.peak_memory_bytes < big.peak_memory_bytes
    assert small.largest_batch is None and big.largest_batch > 8 and "estimate" in big.message
    assert not (ws / "training" / "demo" / "runs").exists()  # the dry run leaves nothing behind


def test_out_of_memory_reports_the_largest_batch_that_ran(ws, monkeypatch):  # noqa: F811
    monkeypatch.setenv(OOM_TEST_ENV, "3")  # a step at batch 4 or more raises CUDA's out-of-memory error
    result = fit_check(config_from_dict(tiny_config(batch_size=6)), Workspace.open(ws), dry_run=True)
    assert not result.fits and result.largest_batch == 3
    assert "batch 6 does not fit" in result.message and "batch 3 does" in result.message
    fits = fit_check(config_from_dict(tiny_config(batch_size=2)), Workspace.open(ws), dry_run=True, search=True)
    assert fits.fits and fits.largest_batch == 3 and fits.step_seconds > 0


def test_config_check_fit_json(ws):  # noqa: F811
    path = save_config(config_from_dict(tiny_config(batch_size=2)), ws / "training" / "demo" / "configs" / "f.yaml")
    done = subprocess.run([sys.executable, "-m", "modules", "--workspace", str(ws), "config", "check", str(path),
                           "--fit", "--json"], cwd=REPO, env=python_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["device"] == "cpu" and data["estimated"] is True and data["batch"] == 2
    assert data["peak_memory_bytes"] > 0 and data["step_seconds"] is None and data["largest_batch"] is None
