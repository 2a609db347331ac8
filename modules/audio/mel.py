"""jik876 HiFi-GAN's log-mel front end, batched on any device.

HiFi-GAN checkpoints only work with the exact mel they were trained on, so this
follows jik876's ``meldataset.mel_spectrogram`` step by step (reflect padding of
``(n_fft - hop) / 2``, uncentred STFT, a ``sqrt(re² + im² + 1e-9)`` magnitude,
the librosa/Slaney filterbank and ``log(clamp(x, 1e-5))``).
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
_LOCK = threading.Lock()


def _basis(device: torch.device, sample_rate: int, n_fft: int, num_mels: int, win_size: int,
           fmin: float, fmax: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Filterbank ``[mels, n_fft//2+1]`` and Hann window for ``device``, built once per parameter set."""
    key = (str(device), sample_rate, n_fft, num_mels, win_size, float(fmin), None if fmax is None else float(fmax))
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    import torchaudio.functional as AF

    top = float(sample_rate) / 2.0 if fmax is None else float(fmax)
    fb = AF.melscale_fbanks(n_fft // 2 + 1, float(fmin), top, num_mels, sample_rate,
                            norm="slaney", mel_scale="slaney")  # [freqs, mels], float32
    mel = fb.T.contiguous().to(device)
    window = torch.hann_window(win_size, dtype=torch.float32).to(device)
    with _LOCK:
        _CACHE[key] = (mel, window)
    return mel, window


def mel_spectrogram(wave: torch.Tensor, *, sample_rate: int, n_fft: int, num_mels: int, hop_size: int,
                    win_size: int, fmin: float, fmax: float | None) -> torch.Tensor:
    """Log-mel of ``wave`` ``[B, samples]`` (or ``[samples]``) -> ``[B, num_mels, frames]``.

    ``frames`` is ``samples // hop_size`` for the usual ``n_fft = 4 * hop``; always
    computed in float32 (even under autocast) because the log of small magnitudes
    is precision-sensitive.
    """
    if wave.dim() == 1:
        wave = wave.unsqueeze(0)
    if wave.dim() == 3 and wave.shape[1] == 1:
        wave = wave.squeeze(1)
    if wave.dim() != 2:
        raise ValueError(f"mel_spectrogram expects [B, samples], got shape {tuple(wave.shape)}")
    mel_basis, window = _basis(wave.device, int(sample_rate), int(n_fft), int(num_mels), int(win_size), fmin, fmax)
    pad = int((n_fft - hop_size) / 2)
    with torch.autocast(device_type=wave.device.type, enabled=False):
        x = F.pad(wave.float().unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(x, n_fft, hop_length=hop_size, win_length=win_size, window=window,
                          center=False, normalized=False, onesided=True, return_complex=True)
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
        mel = torch.matmul(mel_basis, mag)
        return torch.log(torch.clamp(mel, min=1e-5))
