"""Quality flags on prepared clips, so the user sees what to fix before training.

Audio flags (too_short, too_long, clipped, near_silent) look at one clip's samples; text flags
(empty_text, repeated_phrase, cps_outlier, duplicate_text) need the text and, for the last two,
the whole dataset.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

FLAGS = ("too_short", "too_long", "clipped", "near_silent", "empty_text", "repeated_phrase", "cps_outlier",
         "duplicate_text")
AUDIO_FLAGS = ("too_short", "too_long", "clipped", "near_silent")
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped
CLIPPED_FRACTION = 0.001  # more than 0.1 % of samples at full scale
NEAR_SILENT_DBFS = -45.0  # whole-clip RMS below this is near silence
CPS_MIN, CPS_MAX = 4.0, 30.0  # characters per second outside this is implausible for speech
CPS_RELATIVE = 2.0  # or more than 2x away from the dataset's median
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation."""
    return _WORD_RE.findall(str(text or "").lower())


def normalized_text(text: str) -> str:
    return " ".join(words(text))


def audio_flags(samples: np.ndarray, sample_rate: int, min_seconds: float, max_seconds: float) -> list[str]:
    """Flags from the clip's samples (before any normalisation, so clipping in the source is seen)."""
    flags = []
    duration = len(samples) / float(sample_rate)
    if duration < min_seconds:
        flags.append("too_short")
    if duration > max_seconds + 1e-6:
        flags.append("too_long")
    if len(samples):
        if np.mean(np.abs(samples) >= CLIP_LEVEL) > CLIPPED_FRACTION:
            flags.append("clipped")
        rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
        if 20 * math.log10(rms + 1e-12) < NEAR_SILENT_DBFS:
            flags.append("near_silent")
    return flags


def has_repeated_phrase(text: str) -> bool:
    """Whisper's hallucination loop: one word 4+ times in a row, or a phrase of 2-10 words 3+ times in a row."""
    toks = words(text)
    n_tokens = len(toks)
    for n in range(1, min(10, n_tokens // 3) + 1):
        need = 4 if n == 1 else 3
        for start in range(0, n_tokens - n * need + 1):
            gram = toks[start:start + n]
            reps = 1
            pos = start + n
            while toks[pos:pos + n] == gram:
                reps += 1
                pos += n
                if reps >= need:
                    return True
    return False


def cps(text: str, duration: float) -> float:
    """Characters (letters and digits) per second of audio."""
    chars = sum(1 for ch in str(text or "") if ch.isalnum())
    return chars / duration if duration > 0 else 0.0


def text_flags(clips: list[dict[str, Any]]) -> dict[str, list[str]]:
    """file -> text flags for the whole dataset (duplicates and cps outliers are relative to the others)."""
    out: dict[str, list[str]] = {c["file"]: [] for c in clips}
    rates = {}
    seen: dict[str, list[str]] = {}
    for c in clips:
        norm = normalized_text(c.get("text", ""))
        if not norm:
            out[c["file"]].append("empty_text")
            continue
        if has_repeated_phrase(c.get("text", "")):
            out[c["file"]].append("repeated_phrase")
        seen.setdefault(norm, []).append(c["file"])
        if float(c.get("duration", 0)) > 0:
            rates[c["file"]] = cps(c["text"], float(c["duration"]))
    median = float(np.median(list(rates.values()))) if len(rates) >= 5 else None
    for file, rate in rates.items():
        outlier = rate < CPS_MIN or rate > CPS_MAX
        if median and median > 0 and (rate > median * CPS_RELATIVE or rate < median / CPS_RELATIVE):
            outlier = True
        if outlier:
            out[file].append("cps_outlier")
    for files in seen.values():
        if len(files) > 1:
            for file in files:
                out[file].append("duplicate_text")
    return out


def refresh_text_flags(clips: list[dict[str, Any]]) -> None:
    """Recompute text flags in place (after an edit), keeping each clip's audio flags."""
    by_text = text_flags(clips)
    for c in clips:
        keep = [f for f in c.get("flags", []) if f in AUDIO_FLAGS]
        c["flags"] = sorted(set(keep + by_text[c["file"]]), key=FLAGS.index)


DOMINANT_TEXT_SHARE = 0.3  # one text in more than this share of the clips: something went wrong


def dataset_warnings(clips: list[dict[str, Any]]) -> list[str]:
    """Problems of the dataset as a whole. One text repeated across many clips is what whisper
    hallucinates on silence or noise ("You", "Thank you."), or a transcript file copied for every clip."""
    counts: dict[str, int] = {}
    for c in clips:
        norm = normalized_text(c.get("text", ""))
        if norm:
            counts[norm] = counts.get(norm, 0) + 1
    out = []
    if counts:
        text, n = max(counts.items(), key=lambda kv: kv[1])
        if n >= 3 and n > DOMINANT_TEXT_SHARE * len(clips):
            out.append(f"{n} of {len(clips)} clips ({100 * n / len(clips):.0f}%) have the same text {text!r}: "
                       "whisper writes that on silence or noise, or one transcript was given for many files; "
                       "listen to the clips flagged duplicate_text and fix or delete them before training")
    return out
