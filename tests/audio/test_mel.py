"""modules.audio.mel_spectrogram against jik876's meldataset.mel_spectrogram (shared fixtures)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.audio import mel_spectrogram

KW = dict(sample_rate=22050, n_fft=1024, num_mels=80, hop_size=256, win_size=1024, fmin=0)


@pytest.fixture(scope="module")
def mel_dir(shared):
    return shared / "compat" / "hifigan" / "mel_22050"


@pytest.mark.parametrize("fmax,expected", [(8000, "mel_expected.npy"), (None, "mel_for_loss_expected.npy")])
def test_matches_jik876(mel_dir, fmax, expected):
    audio = torch.from_numpy(np.load(mel_dir / "audio.npy")).reshape(1, -1)
    mel = mel_spectrogram(audio, **KW, fmax=fmax)
    ref = np.load(mel_dir / expected)
    assert mel.shape == ref.shape == (1, 80, 129)
    assert np.abs(mel.numpy() - ref).max() < 1e-4


def test_batched_equals_single_and_frames(mel_dir):
    audio = torch.from_numpy(np.load(mel_dir / "audio.npy"))[:8192]
    batch = torch.stack([audio, audio.flip(0) * 0.5])
    mel = mel_spectrogram(batch, **KW, fmax=8000)
    assert mel.shape == (2, 80, 8192 // 256)
    one = mel_spectrogram(batch[1:], **KW, fmax=8000)
    assert torch.allclose(mel[1:], one, atol=1e-5)
    assert not torch.allclose(mel[0], mel[1])


def test_float32_under_bf16_autocast(mel_dir):
    audio = torch.from_numpy(np.load(mel_dir / "audio.npy")).reshape(1, -1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mel = mel_spectrogram(audio, **KW, fmax=8000)
    assert mel.dtype == torch.float32
    assert np.abs(mel.numpy() - np.load(mel_dir / "mel_expected.npy")).max() < 1e-4
