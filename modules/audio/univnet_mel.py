"""tortoise's 100-band 24 kHz mel (``TacotronSTFT(1024, 256, 1024, 100, 24000, 0, 12000)``).

The diffusion decoder's conditioning input and its output space: a reflect-padded STFT done
as tortoise does it (a convolution with DFT rows times a periodic Hann window; closer to its
numbers than an FFT, which matters after the log), the *magnitude* (not power) through a
Slaney filterbank, then ``ln(clamp(x, 1e-5))``. Conditioning uses this raw log mel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SAMPLE_RATE = 24000
N_FFT = 1024
HOP = 256
N_MELS = 100
CONDITIONING_SAMPLES = 102400  # api.py pads or cuts each 24 kHz clip to this (401 frames)

_FILTERBANKS: dict[str, torch.Tensor] = {}
_BASES: dict[str, torch.Tensor] = {}


def filterbank(device: torch.device | str = "cpu") -> torch.Tensor:
    """librosa's Slaney mel filterbank ``[100, 513]`` for 24 kHz, 0-12 kHz."""
    key = str(device)
    if key not in _FILTERBANKS:
        import torchaudio.functional as AF

        fb = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, 12000.0, N_MELS, SAMPLE_RATE, norm="slaney", mel_scale="slaney")
        _FILTERBANKS[key] = fb.T.contiguous().to(device)
    return _FILTERBANKS[key]


def stft_basis(device: torch.device | str = "cpu") -> torch.Tensor:
    """``[1026, 1, 1024]``: real then imaginary DFT rows (bins 0-512) times a periodic Hann window."""
    key = str(device)
    if key not in _BASES:
        import numpy as np

        fourier = np.fft.fft(np.eye(N_FFT))[: N_FFT // 2 + 1]
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
        basis = np.vstack([fourier.real, fourier.imag]) * window[None]
        _BASES[key] = torch.tensor(basis, dtype=torch.float32).unsqueeze(1).to(device)
    return _BASES[key]


def univnet_mel(wave: torch.Tensor) -> torch.Tensor:
    """Waveforms ``[B, samples]`` (or ``[samples]``) at 24 kHz -> raw log mels ``[B, 100, samples//256 + 1]``."""
    if wave.dim() == 1:
        wave = wave.unsqueeze(0)
    if wave.dim() == 3:
        wave = wave.squeeze(1)
    with torch.autocast(device_type=wave.device.type, enabled=False):
        x = F.pad(wave.float().clamp(-1.0, 1.0).unsqueeze(1), (N_FFT // 2, N_FFT // 2), mode="reflect")
        out = F.conv1d(x, stft_basis(x.device), stride=HOP)
        bins = N_FFT // 2 + 1
        magnitude = torch.sqrt(out[:, :bins] ** 2 + out[:, bins:] ** 2)
        return torch.log((filterbank(x.device) @ magnitude).clamp(min=1e-5))


def conditioning_mels(clips_22k: list[torch.Tensor]) -> torch.Tensor:
    """api.py's diffusion conditioning: each 22,050 Hz clip resampled to 24 kHz, padded or cut to
    102,400 samples, its raw log mel; stacked as ``[1, n, 100, 401]``."""
    import torchaudio.functional as AF

    mels = []
    for clip in clips_22k:
        wave = AF.resample(clip.reshape(-1).float(), 22050, SAMPLE_RATE)
        gap = CONDITIONING_SAMPLES - wave.shape[-1]
        wave = F.pad(wave, (0, gap)) if gap > 0 else wave[:CONDITIONING_SAMPLES]
        mels.append(univnet_mel(wave)[0])
    return torch.stack(mels).unsqueeze(0)
