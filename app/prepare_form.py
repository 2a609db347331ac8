"""The Prepare tab's settings form <-> ``PrepareOptions``: choices, defaults, and parsing of what it sends.

The defaults are the CLI's (one ``PrepareOptions()``), so the tab and ``python -m modules prepare``
can never disagree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from app.common import looks_like_path
from modules.errors import UserError
from modules.prepare.options import PrepareOptions
from modules.workspace import Workspace

DEFAULTS = PrepareOptions()
TRANSCRIBER_LABELS = {
    "faster-whisper": "faster-whisper",
    "openai-whisper": "openai-whisper",
    "none": "none — use transcripts that came with the audio",
}
WHISPER_NAMES = ["tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
                 "large-v2", "large-v3", "large-v3-turbo"]
LANGUAGES = ["auto", "en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "uk", "cs", "sv", "tr", "ar",
             "hi", "ja", "ko", "zh"]
_NUMBERS: tuple[tuple[str, type], ...] = (
    ("sample_rate", int), ("seed", int), ("validation_count", int), ("min_seconds", float),
    ("max_seconds", float), ("padding_seconds", float), ("validation_percent", float))


def parse_options(workspace: Workspace, values: dict[str, Any]) -> PrepareOptions:
    """Form values -> validated PrepareOptions; a model path must stay inside the workspace.

    Empty fields fall back to the CLI defaults so a cleared box never means "zero".
    """
    fields = {f.name for f in dataclasses.fields(PrepareOptions)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise KeyError(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if key == "validation_count":
                kwargs[key] = None
            continue
        kwargs[key] = value.strip() if isinstance(value, str) else value
    for key, kind in _NUMBERS:
        if kwargs.get(key) is None:
            continue
        try:
            number = float(kwargs[key])
            if kind is int and not number.is_integer():
                raise ValueError
            kwargs[key] = kind(number)
        except (TypeError, ValueError):
            label = key.replace("_", " ")
            raise UserError(f"{label} {kwargs[key]!r} is not {'a whole number' if kind is int else 'a number'}; "
                            f"leave it empty for {_default_text(key)}") from None
    model = str(kwargs.get("model", DEFAULTS.model))
    if looks_like_path(model):
        kwargs["model"] = str(workspace.inside(model))
    return PrepareOptions(**kwargs).validate()


def blank_if_none(value: Any) -> str:
    """A text box value for an optional number: empty means "not set"."""
    return "" if value is None else str(value)


def model_choices(workspace: Workspace) -> list[str]:
    """Whisper names plus local models found under ``models/whisper/`` (CTranslate2 folders, .pt files)."""
    choices = list(WHISPER_NAMES)
    folder = workspace.models / "whisper"
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.name.startswith("."):
                continue
            if p.is_dir() or p.suffix == ".pt":
                choices.append(f"models/whisper/{p.name}")
    if DEFAULTS.model not in choices:
        choices.insert(0, DEFAULTS.model)
    return choices


def _default_text(key: str) -> str:
    value = getattr(DEFAULTS, key)
    return "the validation %" if value is None else f"the default ({value})"
