"""Quality flags: each one fires on the defect it names and stays quiet on clean clips."""

from __future__ import annotations

import numpy as np

from modules.prepare.checks import audio_flags, has_repeated_phrase, text_flags
from modules.prepare.wer import word_error_rate, word_errors

RATE = 16000


def _speechlike(seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (level * np.sin(2 * np.pi * 200 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_audio_flags():
    assert audio_flags(_speechlike(2.0), RATE, 0.6, 11.6) == []
    assert audio_flags(_speechlike(0.3), RATE, 0.6, 11.6) == ["too_short"]
    assert audio_flags(_speechlike(12.0), RATE, 0.6, 11.6) == ["too_long"]
    loud = np.clip(_speechlike(2.0, level=3.0), -1, 1)
    assert "clipped" in audio_flags(loud, RATE, 0.6, 11.6)
    assert "near_silent" in audio_flags(_speechlike(2.0, level=0.001), RATE, 0.6, 11.6)


def test_repeated_phrase_detects_hallucination_loops():
    assert has_repeated_phrase("Thank you. Thank you. Thank you.")
    assert has_repeated_phrase("so so so so what")
    assert has_repeated_phrase("and then we went and then we went and then we went home")
    assert not has_repeated_phrase("no, no, I said no to the offer")
    assert not has_repeated_phrase("The quick brown fox jumps over the lazy dog.")


def test_text_flags_over_a_dataset():
    clips = [{"file": f"audio/{i}.wav", "text": f"sentence number {w} is here", "duration": 1.6}
             for i, w in enumerate("one two three four five six".split())]
    clips += [
        {"file": "audio/empty.wav", "text": " ... ", "duration": 1.0},
        {"file": "audio/dup1.wav", "text": "Same words here.", "duration": 1.0},
        {"file": "audio/dup2.wav", "text": "same words, here", "duration": 1.0},
        {"file": "audio/fast.wav", "text": "a very long transcript for a tiny piece of audio indeed", "duration": 0.7},
    ]
    flags = text_flags(clips)
    assert flags["audio/0.wav"] == []
    assert flags["audio/empty.wav"] == ["empty_text"]
    assert "duplicate_text" in flags["audio/dup1.wav"] and "duplicate_text" in flags["audio/dup2.wav"]
    assert "cps_outlier" in flags["audio/fast.wav"]


def test_word_error_rate():
    assert word_errors("The cat sat.", "the cat sat") == 0
    assert word_errors("a b c d", "a x c d e") == 2
    assert word_error_rate(["a b", "c d e f"], ["a b", "c d"]) == 2 / 6


def test_one_text_dominating_the_dataset_is_a_warning():
    from modules.prepare.checks import dataset_warnings

    clips = [{"file": f"{i}.wav", "text": "You"} for i in range(6)] + [
        {"file": f"o{i}.wav", "text": f"A real sentence number {i}."} for i in range(4)]
    found = dataset_warnings(clips)
    assert len(found) == 1 and "6 of 10 clips (60%) have the same text 'you'" in found[0]
    varied = [{"file": f"{i}.wav", "text": f"Sentence {i} here."} for i in range(10)]
    assert dataset_warnings(varied) == []
