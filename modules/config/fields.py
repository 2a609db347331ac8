"""How a config key is declared: a dataclass field with its range, choices and help.

Each model package declares its YAML section with these (``modules.hifigan.options``,
``modules.autoregressive.options``); the schema validates every key from this metadata and the
Configure tab builds its form from it.
"""

from __future__ import annotations

import copy
from dataclasses import field
from typing import Any

from modules.errors import UserError


class ConfigError(UserError):
    """An invalid config value; the message names the key (and the file when known)."""


def option(default: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           choices: tuple | None = None, help: str = "") -> Any:
    """A dataclass field with its allowed range/choices and a one-line help (shown by the UI)."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata=meta)
    return field(default=default, metadata=meta)
