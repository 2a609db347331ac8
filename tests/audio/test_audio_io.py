"""modules.audio.io: every input format we promise reads to mono float32; bad files raise AudioReadError."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from modules.audio.io import AudioReadError, read_audio, resample, write_wav


def _tone(rate: int, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_bit_depths_read_as_float(tmp_path, subtype):
    path = tmp_path / f"tone_{subtype}.wav"
    sf.write(str(path), _tone(16000), 16000, subtype=subtype)
    data, rate = read_audio(path)
    assert rate == 16000 and data.dtype == np.float32 and data.ndim == 1
    tolerance = 0.02 if subtype == "PCM_U8" else 1e-3
    np.testing.assert_allclose(data, _tone(16000), atol=tolerance)


def test_stereo_is_mixed_to_mono_or_kept(tmp_path):
    left, right = _tone(22050), _tone(22050, freq=220.0)
    path = tmp_path / "stereo.flac"
    sf.write(str(path), np.stack([left, right], axis=1), 22050, subtype="PCM_24")
    mono, _ = read_audio(path)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-4)
    both, _ = read_audio(path, mono=False)
    assert both.shape == (2, len(left))


def test_48k_is_resampled_to_the_asked_rate(tmp_path):
    path = tmp_path / "hi.wav"
    sf.write(str(path), _tone(48000, 1.0, 1000.0), 48000)
    data, rate = read_audio(path, sample_rate=22050)
    assert rate == 22050 and abs(len(data) - 22050) <= 1
    # the 1 kHz tone survives: its spectrum peaks at 1 kHz
    spectrum = np.abs(np.fft.rfft(data))
    assert abs(np.argmax(spectrum) * 22050 / len(data) - 1000.0) < 5.0
    assert np.allclose(resample(data, 22050, 22050), data)


def test_mp3_reads_without_ffmpeg(tmp_path):
    path = tmp_path / "take.mp3"
    sf.write(str(path), _tone(22050, 1.0), 22050, format="MP3")
    data, rate = read_audio(path)
    assert rate == 22050 and abs(len(data) / rate - 1.0) < 0.1
    assert 0.25 < float(np.sqrt(np.mean(data ** 2))) < 0.45  # the tone's level (0.5 / sqrt 2) survives


def test_unicode_file_name_and_ogg(tmp_path):
    path = tmp_path / "ünïcödé 声音.ogg"
    sf.write(str(path), _tone(24000), 24000, format="OGG", subtype="VORBIS")
    data, rate = read_audio(path)
    assert rate == 24000 and 0.45 < len(data) / rate < 0.55


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk", b"hello, this is not audio\n" * 20])
def test_bad_files_raise_with_the_file_name(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioReadError, match="broken.wav"):
        read_audio(path)


def test_header_only_wav_is_empty(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioReadError, match="no samples"):
        read_audio(path)


def test_write_wav_is_16_bit_mono_and_clipped(tmp_path):
    path = write_wav(tmp_path / "out" / "x.wav", np.array([0.0, 0.5, 2.0, -3.0], dtype=np.float32), 22050)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
    data, _ = sf.read(str(path), dtype="float32")
    assert data.max() <= 1.0 and data.min() >= -1.0 and abs(data[1] - 0.5) < 1e-3
    assert not list(path.parent.glob(".tmp-*"))
