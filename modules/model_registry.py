"""The one list of models: name -> where its ``ModelSpec`` lives.

Adding a model is one package with a spec plus one line here. A plug-in model outside the
project is named in ``VOICETUNE_MODELS`` (``name=module:SPEC[,name2=module2:SPEC]``), so the UI,
the command line and every trainer process it starts know it; ``register`` adds one in-process.
"""

from __future__ import annotations

import os

from modules.errors import UserError
from modules.model_spec import ModelSpec, load_ref

SPECS: dict[str, str | ModelSpec] = {
    "hifigan": "modules.hifigan.spec:SPEC",
    "autoregressive": "modules.autoregressive.spec:SPEC",
    "hifidecoder": "modules.hifidecoder.spec:SPEC",
}
PLUGINS_ENV = "VOICETUNE_MODELS"
_LOADED: dict[str, ModelSpec] = {}


def _plugins_from_env() -> None:
    for item in filter(None, (x.strip() for x in os.environ.get(PLUGINS_ENV, "").split(","))):
        name, sep, ref = item.partition("=")
        if not sep or ":" not in ref:
            raise UserError(f"{PLUGINS_ENV}: {item!r} should be name=module:SPEC")
        SPECS.setdefault(name.strip(), ref.strip())


_plugins_from_env()


def names() -> list[str]:
    """Registered model names, in registry order."""
    return list(SPECS)


def get(name: str) -> ModelSpec:
    """The spec of model ``name`` (UserError listing the models when unknown)."""
    if name not in SPECS:
        raise UserError(f"model {name!r} is not one of {', '.join(SPECS)}")
    if name not in _LOADED:
        ref = SPECS[name]
        spec = load_ref(ref) if isinstance(ref, str) else ref
        if spec.name != name:
            raise ValueError(f"registry entry {name!r} holds the spec of {spec.name!r}")
        _LOADED[name] = spec
    return _LOADED[name]


def all_specs() -> list[ModelSpec]:
    return [get(n) for n in SPECS]


def register(spec: ModelSpec | str, name: str | None = None) -> None:
    """Add (or replace) a model: a ``ModelSpec`` or its ``"module:attribute"``."""
    key = name or (spec.name if isinstance(spec, ModelSpec) else None)
    if not key:
        raise ValueError("register a ModelSpec, or give the name of a 'module:attribute' spec")
    SPECS[key] = spec
    _LOADED.pop(key, None)


def unregister(name: str) -> None:
    SPECS.pop(name, None)
    _LOADED.pop(name, None)
