"""The two scorers, each loaded once per scoring process.

- ``Intelligibility``: whisper (the Prepare tab's loader, so the same model names and local paths
  work) transcribes a sample; its word error rate against the sample's text is the score.
- ``SpeakerLikeness``: resemblyzer's GE2E encoder (weights inside its wheel, so it works offline)
  embeds a sample; the cosine with the mean embedding of the voice's reference clips is the score.

A scorer that cannot load raises ``ScorerUnavailable`` with a message that says how to fix it; the
runner then skips scoring (no whisper model) or scores the word error rate alone (no resemblyzer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modules.errors import UserError

RATE = 16000  # both whisper and resemblyzer take 16 kHz mono


class ScorerUnavailable(RuntimeError):
    """A scorer cannot run here (package or model missing); the message says what to do."""


class Intelligibility:
    """Whisper transcripts and their word error rate against the intended text."""

    def __init__(self, model: str, backend: str = "faster-whisper", device: str = "auto",
                 language: str = "auto", workspace_root: Path | None = None):
        from modules.prepare.transcribe import load_transcriber

        try:
            self.transcriber = load_transcriber(backend, model, device, language, workspace_root)
        except UserError as exc:
            raise ScorerUnavailable(f"word error rate is off: {exc}") from exc
        except ImportError as exc:
            raise ScorerUnavailable(f"word error rate is off: {backend} is not installed ({exc}); "
                                    "pip install -r requirements.txt") from exc
        self.model_id = f"{backend}:{self.transcriber.model_id}"

    def transcribe(self, audio16k: np.ndarray) -> str:
        transcript = self.transcriber.transcribe(np.asarray(audio16k, dtype=np.float32))
        return " ".join(s.text.strip() for s in transcript.segments).strip()


class SpeakerLikeness:
    """Speaker embeddings (unit length, 256 values) and cosine similarities between them."""

    model_id = "resemblyzer-ge2e"

    def __init__(self, device: str = "cpu"):
        try:
            from resemblyzer import VoiceEncoder
        except ImportError as exc:
            raise ScorerUnavailable(f"speaker likeness is off: resemblyzer is not installed ({exc}); "
                                    "pip install -r requirements.txt") from exc
        self.encoder = VoiceEncoder(device, verbose=False)

    def embed(self, audio16k: np.ndarray) -> np.ndarray:
        """The utterance embedding after resemblyzer's own loudness normalisation and silence trim."""
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(np.asarray(audio16k, dtype=np.float32), source_sr=RATE)
        if len(wav) < RATE // 4:  # all silence after the trim (or a click): embed what there was
            wav = np.asarray(audio16k, dtype=np.float32)
        return np.asarray(self.encoder.embed_utterance(wav), dtype=np.float64)


def mean_direction(embeddings: list[np.ndarray]) -> np.ndarray:
    """The unit-length mean of unit embeddings (the voice's centre)."""
    m = np.mean(np.stack(embeddings), axis=0)
    return m / max(float(np.linalg.norm(m)), 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))
