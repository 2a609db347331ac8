"""What the rest of the project knows about a model: one ``ModelSpec`` per model package.

The config schema, the plan, the trainer core, ``run_manager`` and the app ask the spec; none of
them names a model. A spec is cheap to import (no torch): heavier parts are named as
``"module:attribute"`` and imported when used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


def load_ref(ref: str) -> Any:
    """``"package.module:attribute"`` -> the attribute (an import error surfaces as it is)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_class(ref: str) -> type:
    """A class a user named as ``MODULE:CLASS`` (``train --recipe``), with a clear error when it is not there."""
    from modules.errors import UserError

    if ":" not in ref:
        raise UserError(f"recipe {ref!r}: expected MODULE:CLASS, e.g. modules.hifigan.recipe:HifiganRecipe")
    module, _, attr = ref.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise UserError(f"recipe {ref!r}: module {exc.name} is not installed or not written yet") from exc
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise UserError(f"recipe {ref!r}: {module} has no {attr}") from None


@dataclass(frozen=True)
class UIHints:
    """How the app presents the model."""

    label: str  # the model type as the Configure tab names it
    hidden_series: frozenset[str] = frozenset()  # loss series that start unticked in the Run tab
    base_folder: str = ""  # models/<base_folder>/ holds the files users bring as bases
    base_file: Callable[[Any], bool] | None = None  # which files there are bases (a Path -> bool)
    checkpoint_pattern: str = ""  # regex of the run's exported checkpoint names (checkpoints/)
    advanced: frozenset[str] = frozenset()  # section keys shown under "Advanced"
    try_it: str = "clip"  # "clip": resynthesise a clip; "text": speak a text in the clips' voice
    top_level: frozenset[str] = frozenset()  # top-level keys only this model uses (shown with its fields)


@dataclass(frozen=True)
class ModelSpec:
    """Everything about one model that code outside its package needs."""

    name: str  # the config's ``model:`` value and the YAML section's name
    options: type  # dataclass of the YAML section
    defaults: Mapping[str, Any]  # partial config a new config of this model starts from
    presets: Mapping[str, Mapping[str, Any]]  # name -> partial config laid over the defaults
    recipe: str  # "module:Class" of its trainer recipe
    ui: UIHints
    resume_safe: frozenset[str] = frozenset()  # section keys that may change on resume
    prepare_section: Callable[[dict, dict], dict] | None = None  # fills derived values before validation
    validate: Callable[[Any], None] | None = None  # cross-key rules of the section (raise ConfigError)
    base_check: str | None = None  # "module:fn" (config, base_path) -> [problems]
    plan_checks: str | None = None  # "module:fn" (config, root, dataset_dir) -> [(key, message, fix, level)]
    memory_hints: Callable[[Any], tuple[list[str], list[str]]] | None = None  # options -> (knobs, advice)
    commands: Mapping[str, str] = field(default_factory=dict)  # CLI command -> module with add_parser/run
    auto_budget: str | None = None  # "module:fn" (DatasetStats) -> the fine-tune budget (modules.config.auto)
    base_values: str | None = None  # "module:fn" (base path, workspace root) -> section values the base fixes
    synthesis: str | None = None  # "module:fn" (checkpoint, models dir, run section, device) -> what Try it speaks with

    def recipe_class(self) -> type:
        return load_ref(self.recipe)
