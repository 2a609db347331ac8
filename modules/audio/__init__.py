"""Audio I/O and the mel front ends (jik876 HiFi-GAN's and tortoise's)."""

from modules.audio.io import AUDIO_EXTENSIONS, AudioReadError, read_audio, resample, write_wav

__all__ = ["AUDIO_EXTENSIONS", "AudioReadError", "read_audio", "resample", "write_wav", "mel_spectrogram"]


def __getattr__(name):  # keep torch out of import time for callers that only read files
    if name == "mel_spectrogram":
        from modules.audio.mel import mel_spectrogram

        return mel_spectrogram
    raise AttributeError(name)
