"""Model name (``config.model``) -> recipe class, imported only when a run needs it."""

from __future__ import annotations

import importlib

from modules.errors import UserError

RECIPES: dict[str, str] = {
    "hifigan": "modules.hifigan.recipe:HifiganRecipe",
    "autoregressive": "modules.autoregressive.recipe:AutoregressiveRecipe",
}


def load_class(spec: str) -> type:
    """``"package.module:Class"`` -> the class (UserError naming the spec when missing)."""
    if ":" not in spec:
        raise UserError(f"recipe {spec!r}: expected MODULE:CLASS, e.g. modules.hifigan.recipe:HifiganRecipe")
    mod_name, cls_name = spec.split(":", 1)
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        raise UserError(f"recipe {spec!r}: module {exc.name} is not installed or not written yet") from exc
    try:
        return getattr(mod, cls_name)
    except AttributeError:
        raise UserError(f"recipe {spec!r}: {mod_name} has no {cls_name}") from None


def get_recipe_class(model: str) -> type:
    """The registered recipe class for ``model``."""
    if model not in RECIPES:
        raise UserError(f"model {model!r} has no recipe; choose one of {', '.join(RECIPES)}")
    return load_class(RECIPES[model])


def register(model: str, spec: str) -> None:
    """Register (or replace) the recipe of ``model`` as ``"module:Class"``."""
    RECIPES[model] = spec
