"""tortoise's mel front end (conditioning mels and DVAE input), on any device.

Power mel (torchaudio, HTK scale, Slaney norm, center=True), natural log clamped at 1e-5,
divided by the 80 per-channel ``mel_norms`` tortoise ships in ``mel_norms.pth``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from modules.errors import UserError

SAMPLE_RATE = 22050
N_FFT = 1024
HOP = 256
N_MELS = 80
TRAINING_CONDITIONING_SAMPLES = 44000
INFERENCE_CONDITIONING_SAMPLES = 132300


def load_mel_norms(path: str | os.PathLike) -> torch.Tensor:
    """Read ``mel_norms.pth`` (float32 [80])."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: mel_norms.pth not found. Copy tortoise's tortoise/data/mel_norms.pth to "
                        f"models/tortoise/ or set autoregressive.mel_norms in the config.")
    try:
        norms = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path}: cannot be read as a tensor file ({exc}); re-copy tortoise's mel_norms.pth.") from exc
    if not isinstance(norms, torch.Tensor) or norms.numel() != N_MELS:
        raise UserError(f"{path}: expected a tensor of {N_MELS} values, as tortoise's mel_norms.pth holds.")
    return norms.reshape(N_MELS).float()


class TortoiseMel(nn.Module):
    """Waveforms (b, samples) or (b, 1, samples) at 22,050 Hz -> normalised log mels (b, 80, frames)."""

    def __init__(self, mel_norms: torch.Tensor | str | os.PathLike | None = None):
        super().__init__()
        import torchaudio

        self.spec = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, win_length=N_FFT, hop_length=HOP, f_min=0.0, f_max=8000.0,
            n_mels=N_MELS, power=2.0, normalized=False, center=True, pad_mode="reflect",
            norm="slaney", mel_scale="htk")
        if mel_norms is not None and not isinstance(mel_norms, torch.Tensor):
            mel_norms = load_mel_norms(mel_norms)
        self.register_buffer("mel_norms", None if mel_norms is None else mel_norms.reshape(N_MELS).float(),
                             persistent=False)

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Unnormalised ln(power mel)."""
        if wave.dim() == 3:
            wave = wave.squeeze(1)
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.dim() != 2:
            raise ValueError(f"expected waveforms (b, samples), got {tuple(wave.shape)}")
        with torch.autocast(device_type=wave.device.type, enabled=False):
            return torch.log(torch.clamp(self.spec(wave.float()), min=1e-5))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mel = self.log_mel(wave)
        if self.mel_norms is not None:
            mel = mel / self.mel_norms.view(1, -1, 1)
        return mel


def crop_or_pad(wave: torch.Tensor, length: int, rng: random.Random | None = None) -> torch.Tensor:
    """tortoise's conditioning clip: zero-pad short clips, take a random window of long ones."""
    gap = wave.shape[-1] - length
    if gap < 0:
        return F.pad(wave, (0, -gap))
    if gap > 0:
        start = (rng or random).randint(0, gap)
        return wave[..., start:start + length]
    return wave


def conditioning_mel(wave: torch.Tensor, mel: TortoiseMel, length: int = TRAINING_CONDITIONING_SAMPLES,
                     rng: random.Random | None = None) -> torch.Tensor:
    """One clip (samples,) -> its conditioning mel (80, frames): 44,000 samples for training
    (172 frames), 132,300 for inference (517 frames)."""
    clip = crop_or_pad(wave.reshape(-1), length, rng)
    return mel(clip.unsqueeze(0)).squeeze(0)
