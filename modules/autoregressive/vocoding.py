"""Turn DVAE-decoded tortoise mels into audio you can hear.

A HiFi-GAN of this project trained on ``tortoise_mel`` features gives real speech; without
one, Griffin-Lim on the inverted mel gives a rough but recognisable rendering so every
validation step still produces a listenable file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from modules.audio.tortoise_mel import HOP, N_FFT, N_MELS, SAMPLE_RATE
from modules.errors import UserError


class GriffinLimVocoder:
    """Normalised tortoise log-mel (80, T) -> waveform at 22,050 Hz."""

    def __init__(self, mel_norms: torch.Tensor, n_iter: int = 32):
        import torchaudio

        self.mel_norms = mel_norms.reshape(N_MELS, 1).float()
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=N_FFT // 2 + 1, n_mels=N_MELS, sample_rate=SAMPLE_RATE, f_min=0.0, f_max=8000.0,
            norm="slaney", mel_scale="htk")
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=N_FFT, win_length=N_FFT, hop_length=HOP, power=2.0, n_iter=n_iter)
        self.sample_rate = SAMPLE_RATE

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        power_mel = torch.exp(mel.detach().float().cpu().reshape(N_MELS, -1) * self.mel_norms)
        spec = self.inverse_mel(power_mel).clamp(min=0.0)
        wave = self.griffin_lim(spec)
        peak = wave.abs().max()
        return (wave / peak * 0.9 if peak > 0.9 else wave).clamp(-1, 1)


class HifiganVocoder:
    """A HiFi-GAN trained by this project with ``features: tortoise_mel``."""

    def __init__(self, path: str | os.PathLike, device: torch.device | str = "cpu"):
        from modules.hifigan import load_generator_with_config

        self.generator, h = load_generator_with_config(Path(path), None, str(device))
        if h.get("features") not in (None, "tortoise_mel") or int(h.get("in_channels", N_MELS)) != N_MELS:
            raise UserError(f"{path}: this HiFi-GAN was trained on {h.get('features')} features; autoregressive "
                            "samples need one trained with hifigan.features: tortoise_mel (or leave "
                            "autoregressive.vocoder empty for Griffin-Lim)")
        self.generator.eval()
        self.sample_rate = int(h.get("sampling_rate", SAMPLE_RATE))
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel.detach().float().reshape(1, N_MELS, -1).to(self.device)
        return self.generator(x).float().reshape(-1).clamp(-1, 1).cpu()
