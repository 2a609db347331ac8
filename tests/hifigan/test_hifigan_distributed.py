"""HiFi-GAN through ``python -m modules train`` in subprocesses: SIGTERM then resume, 2-process gloo DDP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO, python_env
from tests.helpers.hifigan_helpers import (  # noqa: F401 (pytest fixtures)
    demo_src,
    read_metrics,
    run_dir,
    state_models,
    tiny_config,
    ws,
)


def _save(ws, name: str, cfg: dict) -> str:
    from modules.config.schema import config_from_dict, save_config

    path = ws / "training" / "demo" / "configs" / f"{name}.yaml"
    save_config(config_from_dict(cfg), path)
    return str(path)


def _cmd(ws, *args: str) -> list[str]:
    return [sys.executable, "-m", "modules", "--workspace", str(ws), "train", *args]


def _env() -> dict:
    env = python_env()
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(ws, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(_cmd(ws, *args), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _assert_same_models(a: dict, b: dict) -> None:
    for model in ("generator", "mpd", "msd"):
        assert a[model].keys() == b[model].keys()
        for key in a[model]:
            assert torch.equal(a[model][key], b[model][key]), (model, key)


def test_sigterm_then_resume_is_bit_exact(ws):
    cfg = tiny_config(max_steps=10, save_every_steps=100, num_workers=2)
    straight = _save(ws, "straight", cfg)
    _run(ws, straight)
    ref = state_models(run_dir(ws, "straight") / "states" / "step_00000010.pt")

    stopped = _save(ws, "stopped", cfg)
    run = run_dir(ws, "stopped")
    proc = subprocess.Popen(_cmd(ws, stopped), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        metrics = run / "metrics.jsonl"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped", status
    saved = sorted((run / "states").glob("step_*.pt"))
    assert len(saved) == 1 and 3 <= int(saved[0].stem[5:]) < 10, saved
    assert (run / "checkpoints" / f"g_{saved[0].stem[5:]}").is_file()

    _run(ws, stopped, "--resume", "latest")
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    _assert_same_models(ref, state_models(run / "states" / "step_00000010.pt"))


def test_two_process_gloo_matches_one_process(ws):
    one = _save(ws, "one", tiny_config(batch_size=4, max_steps=3, save_every_steps=3))
    two = _save(ws, "two", tiny_config(batch_size=2, max_steps=3, save_every_steps=3))
    _run(ws, one)
    proc = _run(ws, two, "--gpus", "2", timeout=400)
    assert "2 process(es)" in proc.stdout + proc.stderr
    m1 = [r for r in read_metrics(run_dir(ws, "one")) if not r.get("validation")]
    m2 = [r for r in read_metrics(run_dir(ws, "two")) if not r.get("validation")]
    assert [r["step"] for r in m1] == [r["step"] for r in m2] == [1, 2, 3]
    for key in ("mel_l1", "loss_disc", "loss"):
        assert m1[0][key] == pytest.approx(m2[0][key], rel=1e-5, abs=1e-6), key  # same first batch, same weights
        for a, b in zip(m1, m2):
            assert a[key] == pytest.approx(b[key], rel=1e-3), key
    s1 = state_models(run_dir(ws, "one") / "states" / "step_00000003.pt")
    s2 = state_models(run_dir(ws, "two") / "states" / "step_00000003.pt")
    for model in ("generator", "mpd", "msd"):
        for key, value in s1[model].items():
            assert torch.allclose(value, s2[model][key], rtol=1e-4, atol=2e-5), (
                model, key, float((value - s2[model][key]).abs().max()))
