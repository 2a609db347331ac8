"""Text cleaners matching tortoise's ``english_cleaners`` (and a language-neutral ``basic_cleaners``).

tortoise's released model was trained on text cleaned this way, so fine-tuning text has to be
cleaned identically or the model sees token sequences it never learned.
"""

from __future__ import annotations

import re

_WHITESPACE = re.compile(r"\s+")

# (abbreviation, expansion); matched as a word followed by a period, case-insensitively
_ABBREVIATIONS = [
    (re.compile(r"\b%s\." % short, re.IGNORECASE), full)
    for short, full in [
        ("mrs", "misess"), ("mr", "mister"), ("dr", "doctor"), ("st", "saint"), ("co", "company"),
        ("jr", "junior"), ("maj", "major"), ("gen", "general"), ("drs", "doctors"), ("rev", "reverend"),
        ("lt", "lieutenant"), ("hon", "honorable"), ("sgt", "sergeant"), ("capt", "captain"),
        ("esq", "esquire"), ("ltd", "limited"), ("col", "colonel"), ("ft", "fort"),
    ]
]

_COMMA_NUMBER = re.compile(r"([0-9][0-9,]+[0-9])")
_DECIMAL_NUMBER = re.compile(r"([0-9]+\.[0-9]+)")
_POUNDS = re.compile(r"£([0-9,]*[0-9]+)")
_DOLLARS = re.compile(r"\$([0-9.,]*[0-9]+)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_NUMBER = re.compile(r"[0-9]+")

_inflect_engine = None


def _inflect():
    global _inflect_engine
    if _inflect_engine is None:
        import inflect

        _inflect_engine = inflect.engine()
    return _inflect_engine


def _dollars(m: re.Match) -> str:
    text = m.group(1)
    parts = text.split(".")
    if len(parts) > 2:
        return text + " dollars"
    dollars = int(parts[0]) if parts[0] else 0
    cents = int(parts[1]) if len(parts) > 1 and parts[1] else 0
    d_unit = "dollar" if dollars == 1 else "dollars"
    c_unit = "cent" if cents == 1 else "cents"
    if dollars and cents:
        return f"{dollars} {d_unit}, {cents} {c_unit}"
    if dollars:
        return f"{dollars} {d_unit}"
    if cents:
        return f"{cents} {c_unit}"
    return "zero dollars"


def _number(m: re.Match) -> str:
    num = int(m.group(0))
    eng = _inflect()
    if 1000 < num < 3000:  # read like a year
        if num == 2000:
            return "two thousand"
        if 2000 < num < 2010:
            return "two thousand " + eng.number_to_words(num % 100)
        if num % 100 == 0:
            return eng.number_to_words(num // 100) + " hundred"
        return eng.number_to_words(num, andword="", zero="oh", group=2).replace(", ", " ")
    return eng.number_to_words(num, andword="")


def expand_numbers(text: str) -> str:
    """Numbers, currency and ordinals to words (``$3.50`` -> ``three dollars, fifty cents``)."""
    text = _COMMA_NUMBER.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _POUNDS.sub(r"\1 pounds", text)
    text = _DOLLARS.sub(_dollars, text)
    text = _DECIMAL_NUMBER.sub(lambda m: m.group(1).replace(".", " point "), text)
    text = _ORDINAL.sub(lambda m: _inflect().number_to_words(m.group(0)), text)
    return _NUMBER.sub(_number, text)


def expand_abbreviations(text: str) -> str:
    for pattern, full in _ABBREVIATIONS:
        text = pattern.sub(full, text)
    return text


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace become one space; the ends are not stripped (tortoise keeps them)."""
    return _WHITESPACE.sub(" ", text)


def english_cleaners(text: str) -> str:
    """ASCII transliteration, lowercase, numbers and abbreviations spelled out, ``"`` removed."""
    from unidecode import unidecode

    text = unidecode(text).lower()
    text = expand_numbers(text)
    text = expand_abbreviations(text)
    text = collapse_whitespace(text)
    return text.replace('"', "")


def basic_cleaners(text: str) -> str:
    """Lowercase and collapse whitespace only; keeps non-Latin scripts for custom tokenizers."""
    return collapse_whitespace(text.lower())


CLEANERS = {"english": english_cleaners, "basic": basic_cleaners}
