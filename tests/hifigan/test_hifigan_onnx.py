"""The ONNX engine: jik876's generator through onnxruntime matches jik876's own output, and
``export RUN --onnx`` writes a generator with dynamic batch and length."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import soundfile as sf
import torch

from tests.conftest import REPO, python_env
from tests.helpers.hifigan_helpers import demo_src, run_dir, tiny_config, train, ws  # noqa: F401


def test_vocode_engine_onnx_matches_jik876(shared, tmp_path):
    compat = shared / "compat" / "hifigan"
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    shutil.copy(compat / "generator_v2" / "g_00001234", ckdir / "g_00001234")
    shutil.copy(compat / "config_v2.json", ckdir / "config.json")
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(compat / "generator_v2" / "mel_in.npy", inputs / "mel.npy")
    proc = subprocess.run([sys.executable, "-m", "modules", "--workspace", str(tmp_path), "vocode", "--checkpoint",
                           str(ckdir / "g_00001234"), str(inputs / "mel.npy"), "--out", str(tmp_path / "out"),
                           "--engine", "onnx"], cwd=REPO, env=python_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    wave, sr = sf.read(tmp_path / "out" / "mel.wav", dtype="float32")
    ref = np.load(compat / "generator_v2" / "wave_out.npy").reshape(-1)
    assert sr == 22050 and wave.shape == ref.shape
    assert np.abs(wave - ref).max() < 2 / 32768 + 1e-4  # jik876's output, up to 16-bit rounding
    cached = list((tmp_path / "models" / ".cache" / "onnx").glob("*/generator.onnx"))
    assert len(cached) == 1 and (cached[0].parent / "config.json").is_file()


def test_export_onnx_of_a_run(ws):  # noqa: F811
    import onnxruntime as ort

    from modules.hifigan import load_generator_with_config

    assert train(ws, tiny_config(max_steps=3, save_every_steps=3)) == 0
    run = run_dir(ws)
    done = subprocess.run([sys.executable, "-m", "modules", "--workspace", str(ws), "export", str(run), "--onnx"],
                          cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    onnx_path = run / "checkpoints" / "g_00000003.onnx"
    assert onnx_path.is_file() and "vocode --engine onnx" in done.stdout
    generator, _ = load_generator_with_config(run / "checkpoints" / "g_00000003", None, "cpu")
    generator = generator.remove_weight_norm()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for shape in ((1, 80, 40), (3, 80, 123)):  # dynamic batch and length
        mel = torch.randn(*shape)
        with torch.inference_mode():
            want = generator(mel).numpy()
        got = session.run(None, {"mel": mel.numpy()})[0]
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
