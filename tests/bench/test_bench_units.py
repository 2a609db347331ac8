"""The training bench counts in NVIDIA's units: batch x n_mels x steps/s (what their "frames/s" is)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
import torch

from bench._throughput import NVIDIA_A100_AMP_UNITS, describe, measure_record, nvidia_units, peak_tflops
from tests.conftest import REPO, python_env
from tests.helpers.hifigan_helpers import demo_src, tiny_config, ws  # noqa: F401


def test_nvidia_units_are_batch_times_mels_times_steps():
    assert nvidia_units(128, 80, 1.5) == pytest.approx(15360.0)
    assert nvidia_units(32, 80, 2.0, accumulation=4) == pytest.approx(20480.0)  # every micro-batch counts
    # their published A100 figure is 1.52 steps/s of batch 128: 195 segments of 8,192 samples per second
    assert NVIDIA_A100_AMP_UNITS / (128 * 80) == pytest.approx(1.52, abs=0.005)
    rec = measure_record("x", batch=16, segment=8192, n_mels=80, sample_rate=22050, steps_per_s=6.4,
                         device="cuda", precision="bf16", step_flops=10**12, device_name="NVIDIA H100 80GB HBM3")
    assert rec["segments_per_s"] == pytest.approx(102.4) and rec["nvidia_frames_per_s"] == pytest.approx(8192.0)
    assert rec["nvidia_ratio"] == pytest.approx(8192.0 / 15579)
    assert rec["mfu"] == pytest.approx(6.4 / 989.0) and peak_tflops("cpu", "fp32") is None
    assert "NVIDIA units     8192 = 16 x 80 x 6.400" in describe(rec) and "of the bf16 peak" in describe(rec)
    # fp32 convolutions run on TF32 tensor cores by default: their utilisation is taken against that peak
    tf32 = measure_record("y", batch=16, segment=8192, n_mels=80, sample_rate=22050, steps_per_s=2.0, device="cuda",
                          precision="fp32", step_flops=10**12, device_name="NVIDIA H200", peak_precision="tf32")
    assert tf32["precision"] == "fp32" and tf32["mfu_peak"] == "tf32" and tf32["mfu"] == pytest.approx(2.0 / 494.7)
    assert peak_tflops("Tesla V100-SXM2-32GB", "tf32") == peak_tflops("Tesla V100-SXM2-32GB", "fp32") == 15.7


def test_bench_prints_and_writes_the_contracted_figures(tmp_path):
    out = tmp_path / "b.json"
    done = subprocess.run([sys.executable, "bench/train_hifigan.py", "--device", "cpu", "--preset", "v2",
                           "--batch", "1", "--segment", "2048", "--steps", "2", "--warmup", "1", "--clips", "4",
                           "--disc-width", "0.0625", "--json", str(out), "--workdir", str(tmp_path / "w")],
                          cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = json.loads(out.read_text())
    assert [r["name"] for r in records] == ["plain jik876-style loop (fp32) batch 1", "ours (fp32) batch 1"]
    for rec in records:
        assert {"name", "batch", "segment", "n_mels", "steps_per_s", "segments_per_s", "nvidia_frames_per_s",
                "device"} <= set(rec)
        assert rec["nvidia_frames_per_s"] == pytest.approx(rec["batch"] * rec["n_mels"] * rec["steps_per_s"])
        assert rec["segments_per_s"] == pytest.approx(rec["batch"] * rec["steps_per_s"]) and rec["device"] == "cpu"
        assert rec["step_flops"] > 0
        line = next(x for x in done.stdout.splitlines() if x.startswith(rec["name"]))
        printed = float(re.search(r"NVIDIA units\s+(\d+) = ", line).group(1))
        assert printed == pytest.approx(rec["batch"] * rec["n_mels"] * rec["steps_per_s"], abs=0.5)


def test_vocode_bench_prints_rates_and_the_convolution_ceiling():
    done = subprocess.run([sys.executable, "bench/vocode.py", "--device", "cpu", "--preset", "v2", "--seconds", "0.5",
                           "--repeats", "1", "--onnx", "--ceiling"],
                          cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    cases = [x for x in lines if " RTF " in x]
    assert len(cases) == 3 and all(float(re.search(r"([\d.]+) GFLOP/s\)", x).group(1)) > 0 for x in cases)
    onnx_diff = float(re.search(r"max \|diff\| vs plain ([\d.e+-]+)", cases[-1]).group(1))
    assert cases[-1].startswith("ours exported to ONNX") and onnx_diff < 1e-4
    ceiling = next(x for x in lines if "Best fp32 convolution rate" in x)
    per_call, best = (float(v) for v in re.search(r"([\d.]+) GFLOP per call.*?([\d.]+) GFLOP/s", ceiling).groups())
    assert per_call > 0 and best > 0 and "twice its speed at the same arithmetic would need" in ceiling


def test_a_timed_trainer_run_cut_short_or_out_of_memory_gives_no_figure(ws):  # noqa: F811
    """The real trainer and HiFi-GAN recipe: a SIGINT mid-run (what a time limit sends) makes the trainer stop
    politely with exit 0 after fewer steps, and an out-of-memory step makes it return its exit code 4."""
    from bench._hifigan_common import RunCutShort, run_timed
    from modules.config.schema import config_from_dict, save_config
    from modules.hifigan.recipe import HifiganRecipe
    from modules.trainer.core import Trainer
    from modules.workspace import Workspace

    def timed_run(event: str | None, total: int = 4) -> list:
        times: list = []

        class Timed(HifiganRecipe):
            def train_step(self, batch, models, ctx):
                if len(times) == 1 and event == "oom":
                    raise torch.OutOfMemoryError("CUDA out of memory (test)")
                out = super().train_step(batch, models, ctx)
                times.append(len(times))
                if len(times) == 2 and event == "sigint":
                    os.kill(os.getpid(), signal.SIGINT)
                return out

        cfg = config_from_dict(tiny_config(max_steps=total, save_every_steps=None))
        path = save_config(cfg, ws / "training" / "demo" / "configs" / f"timed-{event}.yaml")
        run_timed(Trainer(cfg, Workspace.open(ws), path, recipe_cls=Timed), times, total)
        return times

    assert len(timed_run(None)) == 4
    with pytest.raises(RunCutShort, match=r"exited with 0 after [23] of 4 steps"):
        timed_run("sigint")
    with pytest.raises(torch.OutOfMemoryError):
        timed_run("oom")
