"""Vocoder validation metrics (modules/hifigan/metrics.py) on a real demo voice clip.

PESQ must rank a clean copy above noisy copies and skip (None) clips it cannot score;
the multi-resolution STFT distance must be zero for identical signals and grow with noise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.audio import read_audio
from modules.hifigan.metrics import multi_resolution_stft, pesq_wb
from tests.conftest import DEMO_VOICE

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def voice() -> tuple[np.ndarray, int]:
    samples, rate = read_audio(DEMO_VOICE / "001.flac")
    assert len(samples) > rate, "the demo clip should hold over a second of speech"
    return samples, rate


def noisy(samples: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (samples + level * rng.standard_normal(len(samples))).astype(np.float32)


def loudest_start(samples: np.ndarray, length: int) -> int:
    """Start of the ``length``-sample window with the most energy: voiced speech, not a leading pause."""
    energy = np.convolve(samples.astype(np.float64) ** 2, np.ones(length), mode="valid")
    return int(np.argmax(energy))


# ---------------------------------------------------------------- PESQ
def test_pesq_scores_identical_speech_high_and_noise_lower(voice):
    pytest.importorskip("pesq")
    y, rate = voice
    clean = pesq_wb(y, y, rate)
    assert clean is not None and clean > 4.0
    light = pesq_wb(noisy(y, 0.003), y, rate)
    heavy = pesq_wb(noisy(y, 0.05), y, rate)
    assert light is not None and heavy is not None
    assert clean - light > 1.0, (clean, light)
    assert light > heavy, (light, heavy)


def test_pesq_skips_near_silence(voice):
    pytest.importorskip("pesq")
    y, rate = voice
    assert pesq_wb(np.zeros_like(y), np.zeros_like(y), rate) is None
    quiet = y * 1e-4  # RMS far below the scoring floor
    assert pesq_wb(quiet, quiet, rate) is None


def test_pesq_skips_too_short_clips(voice):
    pytest.importorskip("pesq")
    y, rate = voice
    start = loudest_start(y, rate // 5)
    short = y[start:start + rate // 5]  # 0.2 s of loud speech: too short, not too quiet
    assert float(np.sqrt(np.mean(short ** 2))) > 0.01
    assert pesq_wb(short, short, rate) is None
    # a short degraded clip against a long reference: the pair is cut to the shorter one
    assert pesq_wb(short, y[start:], rate) is None
    assert pesq_wb(y[start:], y[start:], rate) is not None, "the same speech, long enough, is scored"


# ---------------------------------------------------------------- multi-resolution STFT
def test_stft_distance_is_zero_for_identical_signals(voice):
    y, _ = voice
    t = torch.from_numpy(y)
    assert multi_resolution_stft(t, t.clone()) == pytest.approx(0.0, abs=1e-6)


def test_stft_distance_grows_with_noise(voice):
    y, _ = voice
    t = torch.from_numpy(y)
    distances = [multi_resolution_stft(torch.from_numpy(noisy(y, level)), t) for level in (0.001, 0.01, 0.05)]
    assert distances[0] > 0
    assert distances[0] < distances[1] < distances[2], distances
