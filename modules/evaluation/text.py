"""Word error rate between a sample's text and what whisper heard, both normalised alike.

Why normalise: whisper writes "Twenty-one." where a manifest says "21", and capitals or commas are
not errors of the voice. Both sides go through the cleaners' number and abbreviation expansion
(the same as the autoregressive model's text), lower case, ASCII, no punctuation.
"""

from __future__ import annotations

import re

from unidecode import unidecode

from modules.autoregressive.cleaners import collapse_whitespace, expand_abbreviations, expand_numbers

_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def normalise(text: str) -> str:
    """Lower-case words with numbers spelled out and punctuation removed (apostrophes dropped too)."""
    text = expand_abbreviations(expand_numbers(unidecode(str(text or ""))))
    text = _NOT_WORD.sub(" ", text.lower().replace("-", " "))
    return collapse_whitespace(text.replace("'", "")).strip()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after ``normalise`` (jiwer counts
    the edits); an empty reference scores 0 when nothing was heard and 1 otherwise."""
    import jiwer

    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))
