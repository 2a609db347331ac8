"""tortoise's mel front end against tortoise's own output."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from modules.audio.tortoise_mel import (
    INFERENCE_CONDITIONING_SAMPLES,
    TRAINING_CONDITIONING_SAMPLES,
    TortoiseMel,
    conditioning_mel,
    crop_or_pad,
    load_mel_norms,
)
from modules.errors import UserError

torch.set_num_threads(1)
TOL = 1e-4


@pytest.fixture
def fx(shared):
    d = shared / "compat/tortoise/mel_tortoise"
    info = json.loads((d / "info.json").read_text())
    audio = torch.from_numpy(np.load(d / "audio_22050hz.npy"))
    return d, info, audio, TortoiseMel(shared / "compat/tortoise/mel_norms.pth")


def _npy(d, name):
    return torch.from_numpy(np.load(d / name))


def test_normed_and_unnormed_mels(fx):
    d, info, audio, mel = fx
    assert audio.numel() == info["audio"]["samples"]
    torch.testing.assert_close(mel.mel_norms, _npy(d, "mel_norms.npy"))
    torch.testing.assert_close(mel.spec.mel_scale.fb, _npy(d, "mel_fbanks_513x80.npy"), atol=1e-7, rtol=0)
    normed = mel(audio[None])[0]
    assert list(normed.shape) == info["outputs"]["mel_normed"]
    torch.testing.assert_close(normed, _npy(d, "mel_normed.npy"), atol=TOL, rtol=0)
    log_mel = mel.log_mel(audio[None])[0]
    torch.testing.assert_close(log_mel, _npy(d, "log_mel_unnormed.npy"), atol=TOL, rtol=0)
    # batches: each row equals its own single-clip mel
    batch = mel(torch.stack([audio, audio.flip(0)]))
    torch.testing.assert_close(batch[0], normed, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,length", [("cond_mel_training_44000", TRAINING_CONDITIONING_SAMPLES),
                                         ("cond_mel_inference_132300", INFERENCE_CONDITIONING_SAMPLES)])
def test_conditioning_crops(fx, name, length):
    d, info, audio, mel = fx
    out = conditioning_mel(audio, mel, length)
    assert list(out.shape) == info["outputs"][name]
    torch.testing.assert_close(out, _npy(d, f"{name}.npy"), atol=TOL, rtol=0)


def test_long_clips_are_randomly_cropped():
    wave = torch.arange(50000, dtype=torch.float32)
    a = crop_or_pad(wave, 44000, random.Random(1))
    b = crop_or_pad(wave, 44000, random.Random(1))
    c = crop_or_pad(wave, 44000, random.Random(2))
    assert a.numel() == 44000 and torch.equal(a, b)
    assert torch.equal(a, wave[int(a[0]):int(a[0]) + 44000])
    assert not torch.equal(a, c)
    assert torch.equal(crop_or_pad(wave[:10], 12), torch.cat([wave[:10], torch.zeros(2)]))


def test_bad_norms_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_mel_norms(tmp_path / "mel_norms.pth")
    torch.save(torch.ones(3), tmp_path / "bad.pth")
    with pytest.raises(UserError, match="80 values"):
        load_mel_norms(tmp_path / "bad.pth")
