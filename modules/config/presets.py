"""Per-model defaults and named presets, read from each model's spec (plain dicts, no torch).

``model_defaults(model)`` gives the values a new config of that model starts from;
``preset_values(model, name)`` a partial dict laid over them (dotted by section:
``{"hifigan": {...}}``). The values themselves live in each model package's ``options``
module (jik876's config_v1/v2/v3 for HiFi-GAN; tortoise's full-size UnifiedVoice with
ai-voice-cloning's training values for the autoregressive model).
"""

from __future__ import annotations

import copy
from typing import Any

from modules import model_registry as registry


def models() -> list[str]:
    """Model names a config may name (``model:``)."""
    return sorted(registry.names())


def model_defaults(model: str) -> dict[str, Any]:
    """A deep copy of the model's default values (partial: the schema fills the rest)."""
    return copy.deepcopy(dict(registry.get(model).defaults))


def preset_names(model: str) -> list[str]:
    return sorted(registry.get(model).presets)


def preset_values(model: str, name: str) -> dict[str, Any]:
    """A deep copy of the partial config dict of preset ``name`` (KeyError if unknown)."""
    return copy.deepcopy(dict(registry.get(model).presets[name]))


def section_preset(model: str, name: Any) -> dict[str, Any] | None:
    """The section values a ``<model>.preset: NAME`` key stands for (HiFi-GAN's generator sizes), or None."""
    values = registry.get(model).presets.get(name) if isinstance(name, str) else None
    section = dict((values or {}).get(model) or {})
    section.pop("preset", None)
    return copy.deepcopy(section) or None


def register_preset(model: str, name: str, values: dict[str, Any]) -> None:
    """Add or replace a preset (a partial config dict) for ``model``."""
    registry.get(model).presets[name] = copy.deepcopy(values)
