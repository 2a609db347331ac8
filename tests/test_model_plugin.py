"""A model is one package: a toy third model, defined in the tests, through the real CLI.

config -> config check -> train -> resume, in subprocesses that know the model only from
``VOICETUNE_MODELS``; no file outside the test's workspace is touched.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import python_env


def _cli(ws, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = python_env()
    env["VOICETUNE_MODELS"] = "toy=tests.helpers.toy_model:SPEC"
    return subprocess.run([sys.executable, "-m", "modules", "--workspace", str(ws), *args], env=env, cwd=str(ws),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def toy_ws(tmp_path):
    ws = tmp_path / "ws"
    ds = ws / "training" / "demo"
    ds.mkdir(parents=True)
    (ds / "train.txt").write_text("".join(f"audio/{i:03d}.wav|line {i}\n" for i in range(24)), encoding="utf-8")
    (ds / "validation.txt").write_text("audio/100.wav|held out\n", encoding="utf-8")
    for sub in ("voices", "models"):
        (ws / sub).mkdir()
    return ws


def test_a_toy_model_configures_plans_trains_and_resumes(toy_ws):
    cfg = toy_ws / "training" / "demo" / "configs" / "toy.yaml"
    made = _cli(toy_ws, "config", "toy", "--dataset", "training/demo", "--preset", "wide", "--out", str(cfg),
                "--set", "max_steps=4", "--set", "gpus=0", "--set", "num_workers=0", "--set", "save_every_steps=2",
                "--set", "validate_every_steps=2", "--set", "log_every_steps=1")
    assert made.returncode == 0, made.stderr
    text = cfg.read_text()
    assert "model: toy" in text and "toy: {hidden: 64, items: 24}" in text  # its own section and preset
    bad = _cli(toy_ws, "config", "toy", "--dataset", "training/demo", "--set", "toy.hidden=99999",
               "--out", str(cfg.with_name("bad.yaml")))
    assert bad.returncode == 2 and "toy.hidden: 99999 is more than a toy needs" in bad.stderr  # its own rule

    check = _cli(toy_ws, "config", "check", str(cfg))
    assert check.returncode == 0, check.stderr
    assert "steps per epoch 6" in check.stdout and "a toy network of 64 units" in check.stdout  # its plan check

    first = _cli(toy_ws, "train", str(cfg))
    assert first.returncode == 0, first.stdout + first.stderr
    run = toy_ws / "training" / "demo" / "runs" / "toy"
    assert sorted(p.name for p in (run / "states").glob("step_*.pt")) == ["step_00000002.pt", "step_00000004.pt"]
    again = _cli(toy_ws, "train", str(cfg), "--resume", "latest", "--set", "max_steps=6")
    assert again.returncode == 0, again.stdout + again.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if line.strip() and not json.loads(line).get("validation")]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert "resuming from" in (run / "train.log").read_text()
    assert (run / "checkpoints" / "toy_00000006.pt").is_file()


def test_the_toy_model_in_process_through_the_registry(toy_ws, monkeypatch):
    """Registered in-process, the UI's run listing and the config schema know it too."""
    from modules import model_registry
    from modules.config.schema import default_config, known_keys
    from modules.run_manager import list_checkpoints

    model_registry.register("tests.helpers.toy_model:SPEC", name="toy")
    try:
        cfg = default_config("toy", "training/demo", preset="wide")
        assert cfg.options.hidden == 64 and cfg.toy is cfg.options and cfg.hifigan is None
        assert "toy.hidden" in known_keys("toy")
        ck = toy_ws / "training" / "demo" / "runs" / "r" / "checkpoints"
        ck.mkdir(parents=True)
        for step in (2, 10):
            (ck / f"toy_{step:08d}.pt").write_bytes(b"x")
        assert [p.name for p in list_checkpoints(ck.parent)] == ["toy_00000010.pt", "toy_00000002.pt"]
    finally:
        model_registry.unregister("toy")
