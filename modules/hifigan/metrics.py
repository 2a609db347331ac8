"""Validation metrics for vocoders: multi-resolution STFT distance and wideband PESQ."""

from __future__ import annotations

import numpy as np
import torch

# (n_fft, hop, win): the three resolutions of Parallel WaveGAN's multi-resolution STFT loss.
STFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
PESQ_RATE = 16000
MIN_PESQ_RMS = 1e-3  # below this the reference is near-silent and PESQ has no utterance to score


def _mag(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    window = torch.hann_window(win, device=x.device)
    spec = torch.stft(x.float(), n_fft, hop, win, window=window, return_complex=True)
    return torch.sqrt(torch.clamp(spec.real ** 2 + spec.imag ** 2, min=1e-7))


def multi_resolution_stft(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Spectral convergence + log-magnitude L1, averaged over three resolutions (lower is better)."""
    y_hat, y = y_hat.reshape(1, -1), y.reshape(1, -1)
    total = 0.0
    for n_fft, hop, win in STFT_RESOLUTIONS:
        a, b = _mag(y_hat, n_fft, hop, win), _mag(y, n_fft, hop, win)
        sc = torch.linalg.norm(b - a) / torch.clamp(torch.linalg.norm(b), min=1e-7)
        mag = torch.mean(torch.abs(torch.log(b) - torch.log(a)))
        total += float(sc + mag)
    return total / len(STFT_RESOLUTIONS)


def pesq_available() -> bool:
    try:
        import pesq  # noqa: F401
    except Exception:
        return False
    return True


def pesq_wb(y_hat: np.ndarray, y: np.ndarray, sample_rate: int) -> float | None:
    """Wideband PESQ at 16 kHz, or None when ``pesq`` is missing or the clip is too quiet/short to score."""
    if not pesq_available():
        return None
    from pesq import pesq

    from modules.audio.io import resample

    ref = resample(np.asarray(y, dtype=np.float32), sample_rate, PESQ_RATE)
    deg = resample(np.asarray(y_hat, dtype=np.float32), sample_rate, PESQ_RATE)
    n = min(len(ref), len(deg))
    ref, deg = ref[:n], deg[:n]
    if n < PESQ_RATE // 4 or float(np.sqrt(np.mean(ref ** 2))) < MIN_PESQ_RMS:
        return None
    try:
        return float(pesq(PESQ_RATE, ref, deg, "wb"))
    except Exception:  # NoUtterancesError and friends: nothing to score in this clip
        return None
