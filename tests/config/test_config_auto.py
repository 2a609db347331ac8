"""Settings derived from the data and the hardware: different, sane budgets for 30 and 3,000 clips."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from modules.config.auto import apply, derive
from modules.config.schema import default_config, load_config
from modules.workspace import Workspace
from tests.conftest import REPO, python_env


def _dataset(root, clips: int, seconds_each: float = 3.0):
    ds = root / "training" / "synthetic"
    ds.mkdir(parents=True)
    (ds / "train.txt").write_text("".join(f"audio/{i:05d}.wav|line {i}\n" for i in range(clips)))
    (ds / "validation.txt").write_text("audio/v.wav|a validation line\n")
    (ds / "dataset.json").write_text(json.dumps({"totals": {"clips": clips, "seconds": clips * seconds_each}}))
    for sub in ("voices", "models"):
        (root / sub).mkdir(exist_ok=True)
    return Workspace.open(root)


@pytest.mark.parametrize("model", ["hifigan", "autoregressive", "hifidecoder"])
def test_small_and_large_datasets_get_different_sane_budgets(tmp_path, model):
    small_ws, large_ws = _dataset(tmp_path / "s", 30), _dataset(tmp_path / "l", 3000)
    small = {d.key: d for d in derive(default_config(model, "training/synthetic"), small_ws)}
    large = {d.key: d for d in derive(default_config(model, "training/synthetic"), large_ws)}
    for d in (small, large):
        assert d["batch_size"].value <= 16 and "no GPU" in d["batch_size"].why  # the CPU here
        assert d["precision"].value == "auto"
        assert d["save_every_steps"].value == 3 * d["validate_every_steps"].value
        assert all(item.key in item.line() and item.why for item in d.values())
    if model == "hifigan":
        assert small["max_steps"].value == 3000 and large["max_steps"].value == 50000
        assert "1.5 min of audio" in small["max_steps"].why
    elif model == "hifidecoder":  # 1,000 steps per minute of audio, 2,000 to 30,000
        assert small["max_steps"].value == 2000 and large["max_steps"].value == 30000
    else:
        assert small["epochs"].value == 67 and large["epochs"].value == 5
        assert small["lr_schedule.warmup_steps"].value <= 500
    for d, clips in ((small, 30), (large, 3000)):
        steps = d["max_steps"].value or d["epochs"].value * (clips // d["batch_size"].value)
        assert 20 <= steps / d["validate_every_steps"].value <= 40  # about 30 validations per run


def test_config_auto_command_and_explicit_values_win(tmp_path):
    ws = _dataset(tmp_path, 30)
    out = tmp_path / "auto.yaml"
    done = subprocess.run([sys.executable, "-m", "modules", "--workspace", str(ws.root), "config", "hifigan",
                           "--dataset", "training/synthetic", "--auto", "--set", "batch_size=3", "--out", str(out)],
                          cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "max_steps = 3000:" in done.stdout and "validate_every_steps = 100:" in done.stdout
    assert "batch_size =" not in done.stdout  # set explicitly: not derived, not explained
    cfg = load_config(out)
    assert cfg.batch_size == 3 and cfg.max_steps == 3000 and cfg.precision == "auto"  # --set wins
    assert apply(cfg, [derive(cfg, ws)[-1]]).precision == "auto"


def test_precision_auto_is_the_default_and_resolves_to_fp32_on_the_cpu(tmp_path):
    from modules.config.plan import plan_run
    from modules.trainer.precision import resolve_precision

    ws = _dataset(tmp_path, 30)
    cfg = default_config("hifigan", "training/synthetic")
    assert cfg.precision == "auto" and resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # an explicit choice is kept
    assert "precision fp32 (auto) on this machine" in plan_run(cfg, ws, gpus_available=0).summary()


def test_an_explicit_length_sets_the_cadence(tmp_path):
    ws = _dataset(tmp_path, 30)
    cfg = default_config("hifigan", "training/synthetic")
    from modules.config.schema import apply_overrides

    derived = {d.key: d.value for d in derive(apply_overrides(cfg, ["max_steps=600"]), ws, {"max_steps"})}
    assert "max_steps" not in derived and "epochs" not in derived
    assert derived["validate_every_steps"] == 20 and derived["save_every_steps"] == 60

