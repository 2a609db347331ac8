"""Settings of one dataset preparation, shared by the CLI and the Prepare tab (same defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from modules.errors import UserError

TRANSCRIBERS = ("faster-whisper", "openai-whisper", "none")
NORMALIZE_MODES = ("none", "peak", "loudness")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_MODEL = "small"
# tortoise's autoregressive model accepts at most 255,995 samples at 22,050 Hz (~11.6 s)
DEFAULT_MAX_SECONDS = 11.6
DEFAULT_MIN_SECONDS = 0.6


@dataclass
class PrepareOptions:
    """Everything that changes the prepared dataset; stored in ``dataset.json``."""

    transcriber: str = "faster-whisper"  # faster-whisper | openai-whisper | none (use transcripts given with the audio)
    model: str = DEFAULT_MODEL  # a whisper model name, or a CTranslate2 folder / whisper .pt path
    language: str = "auto"  # auto or a language code such as "en"
    device: str = "auto"  # auto | cpu | cuda
    sample_rate: int = 22050
    min_seconds: float = DEFAULT_MIN_SECONDS
    max_seconds: float = DEFAULT_MAX_SECONDS
    padding_seconds: float = 0.15  # silence kept before the first and after the last word of a clip
    trim_silence: bool = True
    normalize: str = "none"  # none | peak | loudness
    validation_percent: float = 5.0
    validation_count: int | None = None  # overrides validation_percent when set
    seed: int = 0
    skip_existing: bool = False  # reuse cached transcriptions of unchanged source files

    def validate(self) -> "PrepareOptions":
        """Raise UserError on a setting that cannot work, naming the setting and the allowed values."""
        if self.transcriber not in TRANSCRIBERS:
            raise UserError(f"transcriber {self.transcriber!r} is unknown; use one of {', '.join(TRANSCRIBERS)}")
        if self.normalize not in NORMALIZE_MODES:
            raise UserError(f"normalize {self.normalize!r} is unknown; use one of {', '.join(NORMALIZE_MODES)}")
        if self.device not in DEVICES:
            raise UserError(f"device {self.device!r} is unknown; use one of {', '.join(DEVICES)}")
        if not (8000 <= int(self.sample_rate) <= 192000):
            raise UserError(f"sample rate {self.sample_rate} is out of range; use 8000 to 192000 (22050 for tortoise)")
        if not (0 <= self.min_seconds < self.max_seconds):
            raise UserError(
                f"min seconds ({self.min_seconds}) must be >= 0 and below max seconds ({self.max_seconds})"
            )
        if self.max_seconds < 1.0:
            raise UserError(f"max seconds ({self.max_seconds}) is too small; use at least 1 second")
        if not (0 <= self.padding_seconds <= 2.0):
            raise UserError(f"padding ({self.padding_seconds} s) must be between 0 and 2 seconds")
        if not (0 <= self.validation_percent < 100):
            raise UserError(f"validation percent ({self.validation_percent}) must be from 0 to below 100")
        if self.validation_count is not None and self.validation_count < 0:
            raise UserError(f"validation count ({self.validation_count}) must be 0 or more")
        if not str(self.model or "").strip() and self.transcriber != "none":
            raise UserError("no whisper model given; pass a model name such as 'small' or a path")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
