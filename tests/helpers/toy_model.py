"""A third model that lives only in the tests: proof that a model is one package plus a registry line.

Registered through ``VOICETUNE_MODELS=toy=tests.helpers.toy_model:SPEC`` (with ``tests/`` on PYTHONPATH), the
plug-in route a model outside the project would take; nothing under ``modules/`` knows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modules.config.fields import ConfigError, option
from modules.model_spec import ModelSpec, UIHints
from tests.helpers.trainer_toy import IN, OUT, ToyData, ToyRecipe


@dataclass
class ToyOptions:
    """The ``toy:`` section."""

    hidden: int = option(16, lo=1, help="hidden units of the toy network")
    items: int = option(24, lo=4, help="training items")


def validate(o: ToyOptions) -> None:
    if o.hidden > 4096:
        raise ConfigError(f"toy.hidden: {o.hidden} is more than a toy needs (at most 4096)")


def plan_checks(c: Any, root: Path, dataset_dir: Path) -> list:
    from modules.config.plan import PlanWarning

    return [PlanWarning("toy.hidden", f"a toy network of {c.options.hidden} units learns nothing useful.",
                        "use it for tests only")]


class ToyModelRecipe(ToyRecipe):
    name = "toy"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.items = self.options.items  # typed options of its own section

    def build_models(self) -> dict[str, nn.Module]:
        torch.manual_seed(self.config.seed)
        h = self.options.hidden
        return {"net": nn.Sequential(nn.Linear(IN, h), nn.Tanh(), nn.Linear(h, OUT)), "aux": nn.Linear(OUT, OUT)}

    def train_dataset(self):
        return ToyData(self.items, self.config.seed)


SPEC = ModelSpec(
    name="toy",
    options=ToyOptions,
    defaults={"epochs": 3, "batch_size": 4, "learning_rate": 0.01, "lr_schedule": {"type": "constant"}, "toy": {}},
    presets={"wide": {"toy": {"hidden": 64}}},
    recipe="tests.helpers.toy_model:ToyModelRecipe",
    ui=UIHints(label="Toy", checkpoint_pattern=r"^toy_(\d+)\.pt$"),
    resume_safe=frozenset({"items"}),
    validate=validate,
    plan_checks="tests.helpers.toy_model:plan_checks",
    memory_hints=lambda o: ([f"toy.hidden {o.hidden}"], ["lower toy.hidden"]),
)
