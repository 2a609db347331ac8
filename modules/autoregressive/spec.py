"""tortoise's autoregressive model as the rest of Voicetune sees it (registered in ``modules.model_registry``)."""

from __future__ import annotations

from pathlib import Path

from modules.autoregressive import options
from modules.model_spec import ModelSpec, UIHints

_WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt")
_NOT_A_GPT = ("dvae", "mel_norms", "diffusion", "clvp", "vocoder", "hifidecoder")


def is_base_file(path: Path) -> bool:
    """A GPT a fine-tune can start from (not one of tortoise's other files in models/tortoise/)."""
    return path.suffix in _WEIGHT_SUFFIXES and not any(k in path.stem for k in _NOT_A_GPT)


SPEC = ModelSpec(
    name="autoregressive",
    options=options.AutoregressiveOptions,
    defaults=options.DEFAULTS,
    presets=options.PRESETS,
    recipe="modules.autoregressive.recipe:AutoregressiveRecipe",
    ui=UIHints(label="Autoregressive", base_folder="tortoise", base_file=is_base_file,
               checkpoint_pattern=r"^(\d+)_gpt\.pth$", try_it="text", top_level=options.TOP_LEVEL_KEYS,
               advanced=options.ADVANCED_KEYS),
    resume_safe=options.RESUME_SAFE,
    validate=options.validate,
    base_check="modules.autoregressive.recipe:check_base",
    plan_checks="modules.autoregressive.plan_checks:plan_checks",
    memory_hints=options.memory_hints,
    commands={"synthesize": "modules.autoregressive.synthesize", "tokenizer": "modules.autoregressive.tokenizer_cli"},
    auto_budget="modules.autoregressive.auto:budget",
    base_values="modules.autoregressive.base_values:base_values",
)
