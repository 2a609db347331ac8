"""The ``prepare`` command: exit codes, summary, options reaching the engine, no tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.conftest import DEMO_VOICE, REPO, python_env


def _run(*args, workspace):
    return subprocess.run([sys.executable, "-m", "modules", "--workspace", str(workspace), "prepare", *args],
                          cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=300)


def test_prepare_demo_with_given_transcripts(tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(DEMO_VOICE, ws / "voices" / "demo")
    (ws / "voices" / "demo" / "broken.wav").write_bytes(b"garbage")
    proc = _run("demo", "--transcriber", "none", "--sample-rate", "16000", "--validation-count", "4", "--seed", "7",
                "--normalize", "peak", "--padding", "0.1", "--min-seconds", "0.5", "--max-seconds", "10",
                workspace=ws)
    assert proc.returncode == 0, proc.stderr
    assert "prepared 30 clips" in proc.stdout and "26 train, 4 validation" in proc.stdout
    assert "broken.wav" in proc.stdout and "not readable" in proc.stdout
    assert "100%" in proc.stderr  # the progress bar ran to the end
    meta = json.loads((ws / "training" / "demo" / "dataset.json").read_text())
    settings = meta["settings"]
    assert (settings["sample_rate"], settings["validation_count"], settings["seed"], settings["normalize"],
            settings["padding_seconds"], settings["min_seconds"], settings["max_seconds"]) == (
        16000, 4, 7, "peak", 0.1, 0.5, 10.0)


def test_nothing_usable_exits_non_zero_with_a_message(tmp_path):
    ws = tmp_path / "ws"
    (ws / "voices" / "empty").mkdir(parents=True)
    (ws / "voices" / "empty" / "readme.pdf").write_bytes(b"%PDF")
    proc = _run("empty", "--transcriber", "none", workspace=ws)
    assert proc.returncode != 0
    assert "nothing usable" in proc.stderr and "readme.pdf" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run("../escape", "--transcriber", "none", workspace=ws)
    assert proc.returncode != 0 and "not allowed" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run("missing", "--transcriber", "none", workspace=ws)
    assert proc.returncode != 0 and "no folder" in proc.stderr
    proc = _run("empty", "--transcriber", "none", "--min-seconds", "20", workspace=ws)
    assert proc.returncode != 0 and "min seconds" in proc.stderr


def test_help_lists_every_option():
    proc = subprocess.run([sys.executable, "-m", "modules", "prepare", "--help"], cwd=REPO, env=python_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for option in ("--transcriber", "--model", "--language", "--sample-rate", "--min-seconds", "--max-seconds",
                   "--validation-percent", "--validation-count", "--seed", "--skip-existing", "--device",
                   "--normalize", "--padding"):
        assert option in proc.stdout
