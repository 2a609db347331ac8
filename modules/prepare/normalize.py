"""Optional level normalisation of clips: peak (to -1 dBFS) or loudness (ITU-R BS.1770, -20 LUFS)."""

from __future__ import annotations

import math

import numpy as np

PEAK_DBFS = -1.0
LOUDNESS_LUFS = -20.0


def _gain_to_peak(samples: np.ndarray, peak_dbfs: float) -> float:
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    return (10 ** (peak_dbfs / 20)) / peak if peak > 1e-6 else 1.0


def peak_normalize(samples: np.ndarray, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    return (samples * _gain_to_peak(samples, peak_dbfs)).astype(np.float32)


def loudness(samples: np.ndarray, rate: int) -> float:
    """Integrated loudness in LUFS (torchaudio's BS.1770); RMS dBFS for clips too short to gate."""
    import torch
    import torchaudio.functional as AF

    if len(samples) >= int(0.4 * rate):
        value = float(AF.loudness(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None], rate))
        if math.isfinite(value):
            return value
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    return 20 * math.log10(rms + 1e-10)


def loudness_normalize(samples: np.ndarray, rate: int, target_lufs: float = LOUDNESS_LUFS,
                       peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """Gain to ``target_lufs``, but never above ``peak_dbfs`` (no clipping from the gain)."""
    current = loudness(samples, rate)
    if current < -70:  # silence: nothing to normalise
        return samples.astype(np.float32)
    gain = min(10 ** ((target_lufs - current) / 20), _gain_to_peak(samples, peak_dbfs))
    return (samples * gain).astype(np.float32)


def normalize(samples: np.ndarray, rate: int, mode: str) -> np.ndarray:
    if mode == "peak":
        return peak_normalize(samples)
    if mode == "loudness":
        return loudness_normalize(samples, rate)
    return samples
