"""tortoise's HiFi-GAN decoder fine-tune as the rest of Voicetune sees it (``modules.model_registry``)."""

from __future__ import annotations

from pathlib import Path

from modules.hifidecoder import options
from modules.model_spec import ModelSpec, UIHints


def is_base_file(path: Path) -> bool:
    """tortoise's decoder file or a decoder run's export."""
    return path.name == "hifidecoder.pth" or path.name.endswith("_hifidecoder.pth")


SPEC = ModelSpec(
    name="hifidecoder",
    options=options.HifidecoderOptions,
    defaults=options.DEFAULTS,
    presets=options.PRESETS,
    recipe="modules.hifidecoder.recipe:HifidecoderRecipe",
    ui=UIHints(label="Tortoise HiFi-GAN decoder", hidden_series=frozenset({"loss"}), base_folder="tortoise",
               base_file=is_base_file, checkpoint_pattern=r"^(\d+)_hifidecoder\.pth$", try_it="text",
               advanced=options.ADVANCED_KEYS),
    resume_safe=options.RESUME_SAFE,
    validate=options.validate,
    base_check="modules.hifidecoder.checks:check_base",
    plan_checks="modules.hifidecoder.checks:plan_checks",
    memory_hints=options.memory_hints,
    auto_budget="modules.hifidecoder.auto:budget",
    synthesis="modules.hifidecoder.synthesis:load_pair",
)
