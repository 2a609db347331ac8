"""The run plan (UI "Validate"), LR schedules, and the `config` command."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import yaml

from modules.config.plan import plan_run, validate_config
from modules.config.schema import LRSchedule, apply_overrides, default_config
from modules.trainer.schedules import lr_curve, lr_factor, steps_per_epoch, total_steps
from tests.conftest import REPO, python_env


def make_dataset(root, name="demo", n_train=20, n_val=2, rate=22050, seconds=0.5):
    d = root / "training" / name
    (d / "audio").mkdir(parents=True)
    lines = []
    for i in range(n_train + n_val):
        sf.write(d / "audio" / f"c{i}.wav", np.zeros(int(rate * seconds), np.float32), rate, subtype="PCM_16")
        lines.append(f"audio/c{i}.wav|text {i}")
    (d / "train.txt").write_text("\n".join(lines[:n_train]) + "\n")
    (d / "validation.txt").write_text("\n".join(lines[n_train:]) + ("\n" if n_val else ""))
    return d


def keys(warnings):
    return {w.key for w in warnings}


# ---------------------------------------------------------------- schedules
def test_lr_factor_shapes():
    exp = LRSchedule(type="exponential", gamma=0.9)
    assert [lr_factor(exp, s, 10) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.9, pytest.approx(0.81)]
    ms = LRSchedule(type="multistep", milestones=[2, 4], factor=0.5)
    assert [lr_factor(ms, s, 5) for s in (0, 9, 10, 19, 20, 100)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    warm = LRSchedule(type="constant", warmup_steps=4)
    assert [lr_factor(warm, s, 5) for s in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]
    cos = LRSchedule(type="cosine", cycle_epochs=2, min_lr_ratio=0.1)
    assert lr_factor(cos, 0, 5) == pytest.approx(1.0)
    assert lr_factor(cos, 5, 5) == pytest.approx(0.1 + 0.9 * 0.5)  # half a cycle
    assert lr_factor(cos, 10, 5) == pytest.approx(1.0)  # restart
    whole = LRSchedule(type="cosine")
    assert lr_factor(whole, 99, 10, total_steps=100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))
    with pytest.raises(ValueError):
        lr_factor({"type": "bogus"}, 0, 1)


def test_steps_per_epoch_is_the_same_for_every_split_of_a_global_batch():
    for n in (7, 24, 100, 101):
        one = steps_per_epoch(n, 8, 1, 1)
        assert steps_per_epoch(n, 4, 2, 1) == one
        assert steps_per_epoch(n, 2, 4, 1) == one
        if n % 2 == 0:
            assert steps_per_epoch(n, 4, 1, 2) == one
            assert steps_per_epoch(n, 2, 2, 2) == one
    assert total_steps(10, 7, None) == 70 and total_steps(10, 7, 15) == 15
    curve = lr_curve(LRSchedule(type="exponential", gamma=0.5), 1.0, 10, 30, points=1000)
    assert curve[0] == (0, 1.0) and curve[-1] == (29, 0.25) and len(curve) == 30


# ---------------------------------------------------------------- plan
def test_plan_figures(workspace):
    make_dataset(workspace, n_train=20, n_val=2)
    c = apply_overrides(default_config("hifigan", "training/demo"),
                        ["batch_size=4", "grad_accumulation=1", "epochs=3", "gpus=1", "hifigan.segment_size=8192",
                         "save_every_steps=5", "validate_every_steps=5", "log_every_steps=1", "num_workers=0"])
    plan = plan_run(c, workspace, gpus_available=1)
    assert (plan.train_items, plan.validation_items, plan.steps_per_epoch, plan.total_steps, plan.global_batch) == (
        20, 2, 5, 15, 4)
    assert plan.lr_points[0][1] == pytest.approx(2e-4) and plan.lr_points[-1][0] == 14
    assert plan.ok, plan.summary()
    assert keys(plan.warnings) == set(), plan.summary()


def test_plan_warnings_each_with_a_fix(workspace):
    make_dataset(workspace, n_train=10, n_val=0, rate=16000, seconds=0.1)
    base = default_config("hifigan", "training/demo")
    cases = {
        "batch_size": ["batch_size=16"],  # larger than the dataset
        "grad_accumulation": ["batch_size=1", "grad_accumulation=3"],  # 10 micro-batches, windows of 3
        "lr_schedule.milestones": ["batch_size=2", "epochs=4", "lr_schedule.type=multistep",
                                   "lr_schedule.milestones=[2, 8]"],
        "gpus": ["batch_size=1", "gpus=4"],
        "hifigan.sampling_rate": ["batch_size=2"],
        "hifigan.segment_size": ["batch_size=2"],  # clips of 0.1 s < 8192 samples
        "validate_every_steps": ["batch_size=2"],  # no validation clips
        "base": ["batch_size=2", "base=models/hifigan/g_missing"],
        "lr_schedule.warmup_steps": ["batch_size=2", "epochs=1", "lr_schedule.warmup_steps=100"],
        "save_every_steps": ["batch_size=2", "epochs=1", "save_every_steps=1000"],
    }
    for key, items in cases.items():
        ws = validate_config(apply_overrides(base, items), workspace, gpus_available=2)
        assert key in keys(ws), (key, [str(w) for w in ws])
        for w in ws:
            assert w.message and w.fix, w
    errors = [w for w in validate_config(apply_overrides(base, ["batch_size=16"]), workspace, 1) if w.level == "error"]
    assert any("larger than the dataset" in w.message for w in errors)


def test_plan_missing_dataset_and_autoregressive_files(workspace):
    c = default_config("autoregressive", "training/nothing")
    plan = plan_run(c, workspace, gpus_available=0)
    assert not plan.ok
    assert {"dataset", "autoregressive.tokenizer", "autoregressive.dvae", "autoregressive.mel_norms"} <= keys(
        plan.warnings)
    outside = default_config("hifigan", "../elsewhere")
    assert any(w.level == "error" and w.key == "dataset" for w in validate_config(outside, workspace, 0))


# ---------------------------------------------------------------- CLI
def run_cli(workspace, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", "modules", "--workspace", str(workspace), *args],
                          cwd=cwd or REPO, env=python_env(), capture_output=True, text=True, timeout=120)


def test_config_cli_writes_a_valid_yaml(workspace, tmp_path):
    make_dataset(workspace, n_train=12, n_val=2)
    out = tmp_path / "cfgs" / "tiny.yaml"
    r = run_cli(workspace, "config", "hifigan", "--dataset", "training/demo", "--preset", "v2",
                "--set", "epochs=2", "--set", "batch_size=4", "--set", "hifigan.segment_size=4096",
                "--set", "learning_rate=1e-4", "--out", str(out))
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load(out.read_text())
    assert data["hifigan"]["upsample_initial_channel"] == 128 and data["hifigan"]["segment_size"] == 4096
    assert data["dataset"] == "training/demo" and data["learning_rate"] == 1e-4
    assert "steps per epoch 3" in r.stdout

    rel = run_cli(workspace, "config", "autoregressive", "--dataset", "demo", "--preset", "tiny",
                  "--set", "autoregressive.layers=1", "--out", "rel.yaml", cwd=tmp_path)
    assert rel.returncode == 0, rel.stderr
    assert yaml.safe_load((tmp_path / "rel.yaml").read_text())["autoregressive"]["layers"] == 1

    bad = run_cli(workspace, "config", "hifigan", "--dataset", "training/demo", "--set", "hifigan.segment_size=7",
                  "--out", str(tmp_path / "bad.yaml"))
    assert bad.returncode == 2 and "hifigan.segment_size" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad.yaml").exists()

    check = run_cli(workspace, "config", "check", str(out), "--set", "batch_size=64", "--strict")
    assert check.returncode == 1 and "larger than the dataset" in check.stdout


def shape_checker(config, path):
    """A stand-in base checker registered by the test below (the recipes provide real ones)."""
    return [f"{path.name}: generator has 128 initial channels, preset {config.hifigan.preset} needs 512"]


def test_plan_reports_base_checker_problems(workspace, monkeypatch):
    import dataclasses

    from modules import model_registry

    make_dataset(workspace, n_train=8, n_val=1)
    (workspace / "models" / "g_00001000").write_bytes(b"x")
    spec = model_registry.get("hifigan")
    monkeypatch.setitem(model_registry._LOADED, "hifigan",
                        dataclasses.replace(spec, base_check=f"{__name__}:shape_checker"))
    c = apply_overrides(default_config("hifigan", "training/demo"), ["batch_size=2", "base=models/g_00001000"])
    ws = [w for w in validate_config(c, workspace, 0) if w.key == "base"]
    assert len(ws) == 1 and "128 initial channels" in ws[0].message and ws[0].level == "error"
    # a checker that cannot be imported is a bug: it surfaces, it is never skipped silently
    monkeypatch.setitem(model_registry._LOADED, "hifigan", dataclasses.replace(spec, base_check="no.such.module:check"))
    with pytest.raises(ModuleNotFoundError):
        validate_config(c, workspace, 0)
