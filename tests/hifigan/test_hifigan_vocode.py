"""``python -m modules vocode``: resynthesis of wav files and vocoding of mel .npy files."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import soundfile as sf
import torch

from modules.hifigan import load_generator
from tests.conftest import REPO, python_env


def test_vocode_wav_and_mel(shared, tmp_path):
    compat = shared / "compat" / "hifigan"
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    shutil.copy(compat / "generator_v2" / "g_00001234", ckdir / "g_00001234")
    audio = np.load(compat / "mel_22050" / "audio.npy")
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "speech.wav", audio, 22050, subtype="FLOAT")
    shutil.copy(compat / "generator_v2" / "mel_in.npy", inputs / "mel.npy")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "modules", "--workspace", str(tmp_path), "vocode", "--checkpoint",
                           str(ckdir / "g_00001234"), "--config", str(compat / "config_v2.json"),
                           str(inputs / "speech.wav"), str(inputs / "mel.npy"), "--out", str(out), "--device", "cpu"],
                          cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "real-time factor" in proc.stdout
    mel_wave, sr = sf.read(out / "mel.wav", dtype="float32")
    assert sr == 22050
    ref = np.load(compat / "generator_v2" / "wave_out.npy").reshape(-1)
    assert mel_wave.shape == ref.shape
    assert np.abs(mel_wave - ref).max() < 2 / 32768  # jik876's output, up to 16-bit rounding
    speech, _ = sf.read(out / "speech.wav", dtype="float32")
    assert len(speech) == len(audio) // 256 * 256

    # folder input without a config beside the checkpoint: the V2 preset is recognised from the shapes
    proc = subprocess.run([sys.executable, "-m", "modules", "--workspace", str(tmp_path), "vocode", "--checkpoint",
                           str(ckdir / "g_00001234"), str(inputs), "--out", str(tmp_path / "out2"), "--device", "cpu"],
                          cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    again, _ = sf.read(tmp_path / "out2" / "mel.wav", dtype="float32")
    assert np.array_equal(again, mel_wave)


def test_vocode_bad_input_is_a_clear_error(shared, tmp_path):
    compat = shared / "compat" / "hifigan"
    bad = tmp_path / "wrong.npy"
    np.save(bad, np.zeros((12, 10), dtype=np.float32))
    proc = subprocess.run([sys.executable, "-m", "modules", "--workspace", str(tmp_path), "vocode", "--checkpoint",
                           str(compat / "generator_v2" / "g_00001234"), "--config", str(compat / "config_v2.json"),
                           str(bad), "--out", str(tmp_path / "out"), "--device", "cpu"],
                          cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "wrong.npy" in proc.stderr and "12 channels" in proc.stderr and "Traceback" not in proc.stderr
    gen = load_generator(compat / "generator_v2" / "g_00001234")
    assert isinstance(gen, torch.nn.Module)
