"""Audio file I/O with soundfile (no ffmpeg, no torchcodec) and resampling."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from modules.fileutil import atomic_replace

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff")


class AudioReadError(ValueError):
    """A file could not be decoded as audio; the message names the file and why."""


def read_audio(path: str | os.PathLike, sample_rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Decode any soundfile-readable file to float32 in [-1, 1].

    Returns ``(samples, rate)``: ``samples`` is ``[n]`` when ``mono`` else ``[channels, n]``.
    Resamples when ``sample_rate`` is given. Raises AudioReadError for corrupt,
    empty or non-audio files.
    """
    import soundfile as sf

    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioReadError(f"{path.name}: not readable as audio ({exc})") from exc
    if data.size == 0:
        raise AudioReadError(f"{path.name}: the file holds no samples")
    data = data.T  # [channels, n]
    if not np.isfinite(data).all():
        raise AudioReadError(f"{path.name}: contains NaN or infinite samples")
    if mono:
        data = data.mean(axis=0)
    if sample_rate and rate != sample_rate:
        data = resample(data, rate, sample_rate)
        rate = sample_rate
    return np.ascontiguousarray(data, dtype=np.float32), int(rate)


def resample(samples: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's sinc interpolation) along the last axis."""
    if orig_rate == new_rate:
        return samples
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), orig_rate, new_rate)
    return out.numpy()


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write mono (or ``[channels, n]``) audio atomically: temp file in the same folder, then rename."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    if data.ndim == 2:
        data = data.T
    with atomic_replace(path, "wb") as fh:
        sf.write(fh, data, sample_rate, subtype=subtype, format=(path.suffix.lstrip(".") or "wav").upper())
    return path
