"""Per-model defaults and named presets (plain dicts, no torch).

``model_defaults(model)`` gives the values a new config of that model starts
from; ``PRESETS[model][name]`` holds partial dicts laid over them (dotted by
section: ``{"hifigan": {...}}``). Recipes (or plug-ins) add their own presets
with ``register_preset``; the defaults here mirror the reference projects:
jik876's config_v1/v2/v3 for HiFi-GAN and tortoise-tts's full-size
UnifiedVoice with ai-voice-cloning's training values for the autoregressive
model.
"""

from __future__ import annotations

import copy
from typing import Any

# HiFi-GAN generator sizes of jik876's config_v1.json / config_v2.json / config_v3.json.
HIFIGAN_GENERATOR_KEYS = (
    "resblock",
    "upsample_rates",
    "upsample_kernel_sizes",
    "upsample_initial_channel",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
)

_V1 = {
    "resblock": "1",
    "upsample_rates": [8, 8, 2, 2],
    "upsample_kernel_sizes": [16, 16, 4, 4],
    "upsample_initial_channel": 512,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
}
_V2 = {**copy.deepcopy(_V1), "upsample_initial_channel": 128}
_V3 = {
    "resblock": "2",
    "upsample_rates": [8, 8, 4],
    "upsample_kernel_sizes": [16, 16, 8],
    "upsample_initial_channel": 256,
    "resblock_kernel_sizes": [3, 5, 7],
    "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]],
}

# Generator sizes per HiFi-GAN preset name (the schema refuses a named preset whose sizes were changed).
HIFIGAN_PRESETS: dict[str, dict[str, Any]] = {"v1": _V1, "v2": _V2, "v3": _V3}

# tortoise api.py's UnifiedVoice sizes (autoregressive.pth); also the model code's defaults
TORTOISE_FULL_SIZE = {
    "layers": 30,
    "model_dim": 1024,
    "heads": 16,
    "max_text_tokens": 402,
    "max_mel_tokens": 604,
    "max_conditioning_inputs": 2,
}
_TORTOISE_TINY = {
    "layers": 2,
    "model_dim": 64,
    "heads": 4,
    "max_text_tokens": 120,
    "max_mel_tokens": 250,
    "max_conditioning_inputs": 2,
}

_DEFAULTS: dict[str, dict[str, Any]] = {
    "hifigan": {
        "epochs": 200,
        "batch_size": 16,
        "grad_accumulation": 1,
        "learning_rate": 2e-4,
        "lr_schedule": {"type": "exponential", "gamma": 0.999},
        "grad_clip": None,
        "hifigan": {"preset": "v1", **copy.deepcopy(_V1)},
    },
    "autoregressive": {
        "epochs": 50,
        "batch_size": 8,
        "grad_accumulation": 1,
        "learning_rate": 1e-5,
        "lr_schedule": {"type": "multistep", "milestones": [10, 20, 30, 40], "factor": 0.5},
        "grad_clip": 4.0,
        "text_lr_weight": 0.01,
        "mel_lr_weight": 1.0,
        "autoregressive": copy.deepcopy(TORTOISE_FULL_SIZE),
    },
}

# model -> preset name -> partial config dict applied over the defaults.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "hifigan": {**{name: {"hifigan": {"preset": name, **copy.deepcopy(v)}} for name, v in HIFIGAN_PRESETS.items()},
                # keeps the current sizes but frees them for editing
                "custom": {"hifigan": {"preset": "custom"}}},
    "autoregressive": {
        "full": {"autoregressive": copy.deepcopy(TORTOISE_FULL_SIZE)},
        # From scratch on a CPU: for tests and demos (the output is noise at this size).
        "tiny": {"autoregressive": copy.deepcopy(_TORTOISE_TINY), "batch_size": 4, "learning_rate": 1e-3,
                 "lr_schedule": {"type": "constant"}},
    },
}


def models() -> list[str]:
    """Model names a config may name (``model:``)."""
    return sorted(_DEFAULTS)


def model_defaults(model: str) -> dict[str, Any]:
    """A deep copy of the model's default values (partial: the schema fills the rest)."""
    return copy.deepcopy(_DEFAULTS[model])


def preset_names(model: str) -> list[str]:
    return sorted(PRESETS.get(model, {}))


def preset_values(model: str, name: str) -> dict[str, Any]:
    """A deep copy of the partial config dict of preset ``name`` (KeyError if unknown)."""
    return copy.deepcopy(PRESETS[model][name])


def register_preset(model: str, name: str, values: dict[str, Any]) -> None:
    """Add or replace a preset (a partial config dict) for ``model``."""
    PRESETS.setdefault(model, {})[name] = copy.deepcopy(values)
