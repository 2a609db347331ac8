"""scripts/gpu_checks.sh is run on a short GPU lease with no second try: its smoke mode runs every part tiny on
the CPU, so a broken flag or a part that crashes shows here, not on the device."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.conftest import REPO, python_env

PARTS = ("HiFi-GAN V1 sweep", "HiFi-GAN eager, compile and graphs", "first steps' losses per compile mode",
         "vocoding, batch 1", "vocoding, batch 8", "autoregressive model", "HiFi-GAN V3 sweep",
         "tortoise decoder fine-tune")


def test_every_part_runs_and_what_comes_back_fits_a_lease(tmp_path):
    out = tmp_path / "out"
    env = {**python_env(), "SMOKE": "1", "OUT": str(out), "PY": sys.executable, "BUDGET_S": "900"}
    done = subprocess.run(["bash", "scripts/gpu_checks.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (out / "log.txt").read_text()
    statuses = dict(re.findall(r"^### (.+): exit status (\d+) after", log, flags=re.M))
    assert statuses == {name: "0" for name in PARTS}, log[-4000:]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    # a lease returns at most 8 files, named in letters, digits, '.', '_' and '-'
    assert len(files) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files), files
    for name in ("hifigan_v1.json", "hifigan_compile.json", "hifigan_v3.json"):
        records = json.loads((out / name).read_text())
        assert records and all(r["nvidia_frames_per_s"] > 0 and r["device"] == "cpu" for r in records), name
    assert json.loads((out / "hifidecoder.json").read_text())
    assert "largest relative difference" in log and " RTF " in log


def test_a_part_past_its_limit_is_stopped_and_the_rest_skipped_once_the_budget_is_spent(tmp_path):
    out = tmp_path / "out"
    env = {**python_env(), "SMOKE": "1", "OUT": str(out), "PY": sys.executable, "BUDGET_S": "6", "MIN_PART_S": "1"}
    done = subprocess.run(["bash", "scripts/gpu_checks.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (out / "log.txt").read_text()
    assert re.search(r"^### HiFi-GAN V1 sweep: exit status 124 after \d+ s \(time limit\)$", log, flags=re.M), log
    assert re.search(r"^### tortoise decoder fine-tune: skipped, -?\d+ s of the budget left$", log, flags=re.M), log
