"""tortoise-style BPE text tokenizer (``tokenizer.json`` read with the ``tokenizers`` library).

``encode`` cleans the text (English cleaners by default, as tortoise's ``VoiceBpeTokenizer``
does), writes spaces as ``[SPACE]`` and returns ids. Lines that produce ``[UNK]`` are
reported by ``has_unknown`` so datasets skip them instead of training on holes.
For other languages, ``train_bpe_tokenizer`` builds a new vocabulary from the dataset text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

from modules.autoregressive.cleaners import CLEANERS
from modules.errors import UserError
from modules.fileutil import atomic_write_text

STOP_ID = 0
UNK_ID = 1
SPACE_ID = 2
SPECIAL_TOKENS = ["[STOP]", "[UNK]", "[SPACE]"]


class VoiceTokenizer:
    """Text -> ids for UnifiedVoice; ``vocab_size`` is the model's ``number_text_tokens``."""

    def __init__(self, path: str | os.PathLike, cleaners: str | None = None):
        from tokenizers import Tokenizer

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: tokenizer.json not found. Copy tortoise's tortoise/data/tokenizer.json "
                            f"to models/tortoise/, or train one with the tokenizer command.")
        try:
            self.tokenizer = Tokenizer.from_file(str(self.path))
            meta = json.loads(self.path.read_text(encoding="utf-8"))
        except Exception as exc:
            raise UserError(f"{self.path}: not a valid tokenizers JSON file ({exc}).") from exc
        self.language = (meta.get("model") or {}).get("language")
        if cleaners is None:
            # tortoise always cleans as English (its json has no language); DLAS and our own
            # tokenizers record ``model.language``, and only "en" gets the English cleaners
            cleaners = "english" if self.language in (None, "en") else "basic"
        if cleaners not in CLEANERS:
            raise UserError(f"unknown cleaners {cleaners!r}; choose one of {sorted(CLEANERS)}")
        self.cleaners = cleaners
        self._clean = CLEANERS[cleaners]
        if (self.tokenizer.token_to_id("[UNK]") not in (None, UNK_ID)
                or self.tokenizer.token_to_id("[STOP]") not in (None, STOP_ID)):
            raise UserError(f"{self.path}: expected [STOP]=0 and [UNK]=1 like tortoise's tokenizer.json.")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def clean(self, text: str) -> str:
        return self._clean(text)

    def encode(self, text: str) -> list[int]:
        cleaned = self._clean(text).replace(" ", "[SPACE]")
        return self.tokenizer.encode(cleaned).ids

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        text = self.tokenizer.decode(ids, skip_special_tokens=False).replace(" ", "")
        return text.replace("[SPACE]", " ").replace("[STOP]", "").replace("[UNK]", "")

    @staticmethod
    def has_unknown(ids: Iterable[int]) -> bool:
        """True when a line maps to [UNK] somewhere (the DLAS dataset rejects such lines)."""
        return any(int(i) == UNK_ID for i in ids)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, out_path: str | os.PathLike,
                        language: str = "other") -> Path:
    """Train a tortoise-layout BPE tokenizer ([STOP]=0, [UNK]=1, [SPACE]=2) on ``texts``.

    For languages tortoise's English vocabulary does not cover; the model's text embedding must
    then be resized to ``vocab_size + 1`` rows, so its text weights start fresh. ``language``
    is stored as ``model.language`` (DL-Art-School's field): "en" selects the English cleaners,
    anything else the basic ones (lowercase, whitespace), which keep non-Latin scripts.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    clean = CLEANERS["english" if language == "en" else "basic"]
    lines = [clean(t).replace(" ", "[SPACE]") for t in texts if t and t.strip()]
    if not lines:
        raise UserError("no text to train a tokenizer on: the dataset's train.txt has no transcripts.")
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise UserError(f"vocab_size {vocab_size} is too small for a tokenizer.")
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    data = json.loads(tok.to_str())
    data["model"]["language"] = language  # read back by VoiceTokenizer to pick the cleaners
    return atomic_write_text(out_path, json.dumps(data, ensure_ascii=False))
