"""The ``evaluation:`` section of a training config (every key is resume-safe: scoring never
changes what the model learns)."""

from __future__ import annotations

from dataclasses import dataclass

from modules.config.fields import option

DEVICES = ("auto", "cpu", "cuda")
TRANSCRIBERS = ("faster-whisper", "openai-whisper")
DEFAULT_WHISPER_MODEL = "small"  # Prepare's default, resolved the same way (models/whisper/ first)


@dataclass
class EvaluationOptions:
    """How validation audio is scored and what the scores decide."""

    enabled: bool = option(True, help="score each validation step's audio (word error rate, speaker likeness) "
                                      "in a separate process; skipped with a logged reason when no whisper "
                                      "model resolves")
    whisper_model: str = option(DEFAULT_WHISPER_MODEL,
                                help="whisper model name or path, resolved like Prepare's model "
                                     "(models/whisper/ first)")
    transcriber: str = option("faster-whisper", choices=TRANSCRIBERS, help="whisper backend used for scoring")
    device: str = option("auto", choices=DEVICES,
                         help="where the scorer runs; auto: the GPU when there is one (one sample at a time)")
    patience: int = option(3, lo=1, help="the alarm: this many scored validations in a row worse than the best "
                                         "while the training loss still falls")
    stop_when_worse: bool = option(False, help="stop the run cleanly (a state is saved) when the alarm goes off")
    wer_weight: float = option(1.0, lo=0.0, help="score = speaker_weight x speaker similarity "
                                                 "- wer_weight x min(word error rate, 1)")
    speaker_weight: float = option(1.0, lo=0.0, help="see wer_weight")
    reference_clips: int = option(8, lo=1, help="training clips (a fixed seeded subset) whose mean speaker "
                                                "embedding samples are compared with")
