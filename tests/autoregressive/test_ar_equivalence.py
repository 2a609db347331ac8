"""Splitting the global batch over processes or over accumulated micro-batches trains the same
autoregressive model (exported weights compared), through the real CLI and torchrun (gloo).

tortoise's losses are means over every position of a micro-batch, padding included, so the split
only cannot matter when the items pad alike: the clips here are one recording at eight gains and
noise levels (different codes, the same lengths) with one transcript."""

from __future__ import annotations

import subprocess
import sys

import torch

from tests.autoregressive.test_ar_recipe import make_ar_workspace, tiny_config
from tests.conftest import REPO, python_env

RECIPE = "tests.helpers.ar_quiet:QuietAutoregressiveRecipe"
SETS = ["max_steps=3", "validate_every_steps=null", "save_every_steps=3", "learning_rate=0.001"]


def _train(root, name: str, sets: list[str], gpus: int | None = None) -> dict:
    _, path = tiny_config(root, name, SETS + sets)
    args = [sys.executable, "-m", "modules", "--workspace", str(root), "train", str(path), "--recipe", RECIPE]
    if gpus:
        args += ["--gpus", str(gpus)]
    proc = subprocess.run(args, cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(root / "training/demo/runs" / name / "checkpoints/00000003_gpt.pth", weights_only=True)


def _same_length_dataset(root) -> None:
    import numpy as np

    from modules.audio.io import read_audio, write_wav

    ds = root / "training" / "demo"
    wave, _ = read_audio(ds / "audio" / "001.wav", sample_rate=22050)
    text = (ds / "train.txt").read_text(encoding="utf-8").splitlines()[0].split("|", 1)[1]
    rng = np.random.default_rng(3)
    lines = []
    for i in range(8):
        variant = np.clip(wave * (0.5 + 0.07 * i) + 0.01 * rng.standard_normal(len(wave)), -1, 1)
        write_wav(ds / "audio" / f"same_{i}.wav", variant.astype(np.float32), 22050)
        lines.append(f"audio/same_{i}.wav|{text}")
    (ds / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _assert_same(a: dict, b: dict, what: str) -> None:
    for key, value in a.items():
        assert torch.allclose(value, b[key], rtol=1e-4, atol=2e-5), (what, key, float((value - b[key]).abs().max()))


def test_processes_and_accumulation_equal_one_big_batch(tmp_path, shared):
    root = make_ar_workspace(tmp_path / "ws", n_train=3, n_val=1)
    _same_length_dataset(root)
    one = _train(root, "one", ["batch_size=4"])
    ddp = _train(root, "ddp", ["batch_size=2"], gpus=2)
    accumulated = _train(root, "accum", ["batch_size=2", "grad_accumulation=2"])
    _assert_same(one, ddp, "2 gloo processes x batch 2 vs 1 x batch 4")
    _assert_same(one, accumulated, "batch 2 x accumulation 2 vs batch 4")
    # and the comparison can tell runs apart: half the global batch trains another model
    half = _train(root, "half", ["batch_size=2"])
    assert any(not torch.allclose(one[k], half[k], rtol=1e-4, atol=2e-5) for k in one)
