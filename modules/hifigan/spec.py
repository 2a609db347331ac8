"""The HiFi-GAN vocoder as the rest of Voicetune sees it (registered in ``modules.model_registry``)."""

from __future__ import annotations

import re
from pathlib import Path

from modules.hifigan import options
from modules.model_spec import ModelSpec, UIHints

_G_RE = re.compile(r"^g_\d+$")
_WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt")


def is_base_file(path: Path) -> bool:
    """A generator a HiFi-GAN fine-tune can start from: a jik876 ``g_`` file or a weights file."""
    return bool(_G_RE.match(path.name)) or (path.suffix in _WEIGHT_SUFFIXES and not path.name.startswith("do_"))


SPEC = ModelSpec(
    name="hifigan",
    options=options.HifiganOptions,
    defaults=options.DEFAULTS,
    presets=options.PRESETS,
    recipe="modules.hifigan.recipe:HifiganRecipe",
    ui=UIHints(label="HiFi-GAN vocoder", hidden_series=frozenset({"loss"}), base_folder="hifigan",
               base_file=is_base_file, checkpoint_pattern=r"^g_(\d+)$", try_it="clip",
               advanced=options.ADVANCED_KEYS),
    prepare_section=options.prepare_section,
    validate=options.validate,
    base_check="modules.hifigan.recipe:check_base",
    plan_checks="modules.hifigan.plan_checks:plan_checks",
    memory_hints=options.memory_hints,
    commands={"vocode": "modules.hifigan.vocode"},
    auto_budget="modules.hifigan.auto:budget",
    base_values="modules.hifigan.base_values:base_values",
)
