"""The Generate Configuration form's logic, without Gradio: fields, conversions, Validate, Save, Load.

The form is generated from the schema and each registered model's options (every key, its type,
range, choices and help), so defaults are never written twice and a new key shows up by itself.
Form values go through ``form_to_config`` -> ``config_from_dict`` and are written with
``save_config``: the same code path as ``python -m modules config``. ``app.configure_tab``
only wires widgets to these functions.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from modules import model_registry as registry
from modules.config import presets
from modules.config.schema import (
    ConfigError,
    TrainConfig,
    apply_preset,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    default_config,
    load_config,
    save_config,
)
from modules.errors import UserError
from modules.workspace import Workspace, check_name

if TYPE_CHECKING:
    import pandas as pd



def model_choices() -> list[tuple[str, str]]:
    """(label, name) of every registered model, for the model-type radio."""
    return [(spec.ui.label, spec.name) for spec in registry.all_specs()]


def default_model() -> str:
    return registry.names()[0]


def model_of_top_key(key: str) -> str | None:
    """The model a top-level key belongs to (its spec's ``ui.top_level``), None when shared."""
    return next((spec.name for spec in registry.all_specs() if key in spec.ui.top_level), None)


# keys with their own widgets at the top of the form
SPECIAL_KEYS = ("model", "dataset", "base", "run_name")
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("Length and learning rate", ("epochs", "max_steps", "learning_rate", "lr_schedule", "text_lr_weight",
                                  "mel_lr_weight", "grad_clip")),
    ("Batch and hardware", ("batch_size", "grad_accumulation", "precision", "compile", "gpus", "num_workers", "seed")),
    ("Saving and validation", ("save_every_steps", "save_every_epochs", "validate_every_steps",
                               "validate_every_epochs", "log_every_steps", "keep_states", "validation_samples")),
    ("Validation scoring (which checkpoint is best)", ("evaluation",)),
]
OTHER_GROUP = "Other"
ADVANCED_SUFFIX = ":advanced"  # a model's section keys its spec lists in ``ui.advanced`` go to MODEL:advanced
COLLAPSED_GROUPS = ("Validation scoring (which checkpoint is best)", OTHER_GROUP)  # generic groups shown closed


def section_of(group: str) -> str | None:
    """The model whose section a group shows (its up-front or its advanced part), None for generic groups."""
    model = group[: -len(ADVANCED_SUFFIX)] if group.endswith(ADVANCED_SUFFIX) else group
    return model if model in registry.SPECS else None


def group_title(group: str) -> str:
    model = section_of(group)
    if model is None:
        return group
    label = registry.get(model).ui.label
    return f"Advanced: {label}" if group.endswith(ADVANCED_SUFFIX) else label


def group_open(group: str) -> bool:
    """Up-front groups open, "Advanced" ones and the rarely touched generic groups collapsed."""
    return not group.endswith(ADVANCED_SUFFIX) and group not in COLLAPSED_GROUPS
FIT_GROUP = "Batch and hardware"  # the group the memory-fit check is shown in
# which lr_schedule fields matter for which schedule type (the others are hidden, still saved)
SCHEDULE_FIELDS = {
    "exponential": ("gamma",),
    "multistep": ("milestones", "factor"),
    "cosine": ("cycle_epochs", "min_lr_ratio"),
    "constant": (),
}


@dataclass(frozen=True)
class FormField:
    """One form widget for one dotted config key."""

    key: str
    kind: str  # bool | choice | int | float | list | text
    optional: bool
    choices: tuple | None
    help: str
    model: str | None  # None: every model; else only shown for that model
    group: str

    @property
    def elem_id(self) -> str:
        return "cfg-" + self.key.replace(".", "-")

    @property
    def label(self) -> str:
        name = self.key.split(".", 1)[-1] if self.key.split(".", 1)[0] in registry.SPECS else self.key
        return name.replace("lr_schedule.", "schedule ").replace("_", " ").replace(".", " ")


def _kind(tp: Any) -> tuple[str, bool]:
    optional = False
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, args[0]
    if typing.get_origin(tp) is list:
        return "list", optional
    return {bool: "bool", int: "int", float: "float", str: "text"}.get(tp, "text"), optional


@functools.lru_cache(maxsize=1)
def form_fields() -> tuple[FormField, ...]:
    """Every schema key except the special top ones, in display order, with its widget kind."""
    group_of = {k: g for g, keys in GROUPS for k in keys}
    out: list[FormField] = []

    def walk(cls: type, prefix: str, model: str | None, group: str | None) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = prefix + f.name
            if cls is TrainConfig and (f.name in SPECIAL_KEYS or f.metadata.get("section")):
                continue
            tp = hints[f.name]
            g = group or group_of.get(f.name, OTHER_GROUP)
            if dataclasses.is_dataclass(tp):
                walk(tp, key + ".", model, g)
                continue
            kind, optional = _kind(tp)
            choices = f.metadata.get("choices")
            if choices:
                kind = "choice"
            m = model or model_of_top_key(key)
            out.append(FormField(key, kind, optional, tuple(choices) if choices else None,
                                 f.metadata.get("help", ""), m, g))

    walk(TrainConfig, "", None, None)
    for spec in registry.all_specs():
        start = len(out)
        walk(spec.options, spec.name + ".", spec.name, spec.name)
        for i in range(start, len(out)):
            if out[i].key.split(".", 1)[1] in spec.ui.advanced:
                out[i] = dataclasses.replace(out[i], group=spec.name + ADVANCED_SUFFIX)
    order = [g for g, _ in GROUPS] + [OTHER_GROUP] + [g for n in registry.names() for g in (n, n + ADVANCED_SUFFIX)]
    return tuple(sorted(out, key=lambda f: order.index(f.group)))


def form_keys() -> list[str]:
    """The order in which the UI passes widget values: special keys, then ``form_fields``."""
    return list(SPECIAL_KEYS) + [f.key for f in form_fields()]


def _parse_list(raw: Any, key: str) -> list:
    if isinstance(raw, list):
        return raw
    text = str(raw or "").strip()
    if not text:
        return []
    try:
        value = yaml.safe_load(text)
        if not isinstance(value, list):
            value = yaml.safe_load(f"[{text}]")
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: {text!r} is not a list; write it like [8, 8, 2, 2] ({exc.problem})") from None
    return value


def widget_to_value(field: FormField, raw: Any) -> Any:
    """A widget's value as the config value (blank optional fields become null)."""
    if field.kind == "list":
        return _parse_list(raw, field.key)
    if field.kind == "bool":
        return bool(raw)
    if field.kind in ("int", "float"):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if isinstance(raw, str):
            try:
                raw = float(raw)
            except ValueError:
                raise ConfigError(f"{field.key}: {raw!r} is not a number") from None
        if field.kind == "int" and isinstance(raw, float) and raw.is_integer():
            return int(raw)
        return raw
    if isinstance(raw, str):
        raw = raw.strip()
        if field.optional and not raw:
            return None
    return raw


def value_to_widget(field: FormField, value: Any) -> Any:
    """A config value as the widget shows it (lists as YAML flow text, null text as blank)."""
    if field.kind == "list":
        return yaml.safe_dump(value if value is not None else [], default_flow_style=True, width=1000).strip()
    if value is None and (field.kind == "text" or field.optional):
        return ""
    if field.optional and field.kind in ("int", "float"):
        return str(value)
    return value


def _set(data: dict, key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def _get(data: Mapping, key: str) -> Any:
    node: Any = data
    for p in key.split("."):
        if not isinstance(node, Mapping) or p not in node:
            return None
        node = node[p]
    return node


def form_to_dict(values: Mapping[str, Any]) -> dict[str, Any]:
    """Widget values (dotted key -> value) to a config mapping for the chosen model only."""
    model = values.get("model") or default_model()
    data: dict[str, Any] = {"model": model}
    data["dataset"] = str(values.get("dataset") or "").strip()
    data["base"] = str(values.get("base") or "").strip() or None
    data["run_name"] = str(values.get("run_name") or "").strip() or None
    for f in form_fields():
        if f.key not in values or (f.model and f.model != model):
            continue
        _set(data, f.key, widget_to_value(f, values[f.key]))
    section = data.get(model)
    sizes = presets.section_preset(model, section.get("preset")) if section else None
    # edited sizes turn a named size preset (hifigan.preset: v1) into a custom one instead of an error
    if sizes and "custom" in registry.get(model).presets and any(
            k in section and _norm(section[k]) != _norm(v) for k, v in sizes.items()):
        section["preset"] = "custom"
    return data


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    return str(v) if isinstance(v, (int, str)) and not isinstance(v, bool) else v


def form_to_config(values: Mapping[str, Any]) -> TrainConfig:
    """Widget values -> a validated ``TrainConfig`` (raises ``ConfigError`` naming the key)."""
    return config_from_dict(form_to_dict(values))


def config_to_form(config: TrainConfig) -> dict[str, Any]:
    """A config -> widget values for the special keys and the fields of its model (others untouched)."""
    data = config_to_dict(config)
    out: dict[str, Any] = {
        "model": config.model,
        "dataset": config.dataset,
        "base": config.base or "",
        "run_name": config.run_name or "",
    }
    for f in form_fields():
        if f.model and f.model != config.model:
            continue
        out[f.key] = value_to_widget(f, _get(data, f.key))
    return out


def default_form(model: str, dataset: str, preset: str | None = None) -> dict[str, Any]:
    """Widget values of a new config: the schema's defaults for the model (and a preset)."""
    return config_to_form(default_config(model, dataset or "training/NAME", preset))


def preset_form(values: Mapping[str, Any], preset: str) -> dict[str, Any]:
    """The form with a named preset laid over its current values."""
    return config_to_form(apply_preset(form_to_config(values), preset))


def config_path_for(ws: Workspace, config: TrainConfig, name: str) -> Path:
    """``training/NAME/configs/CONFIG.yaml`` of the config's dataset (inside the workspace)."""
    name = (name or "").strip()
    if name.endswith((".yaml", ".yml")):
        name = name.rsplit(".", 1)[0]
    check_name(name, "config")
    dataset_dir = ws.inside(config.dataset)
    if dataset_dir.parent != ws.training.resolve():
        raise UserError(f"dataset {config.dataset!r}: pick a prepared dataset under training/ to save the config")
    return dataset_dir / "configs" / f"{name}.yaml"


def save_form(ws: Workspace, values: Mapping[str, Any], name: str) -> Path:
    """Validate the form and write its YAML with the schema's ``save_config``."""
    config = form_to_config(values)
    path = config_path_for(ws, config, name)
    save_config(config, path)
    return path


def load_form(ws: Workspace, path: str) -> tuple[dict[str, Any], str]:
    """Read a saved YAML back into widget values; returns (values, config name)."""
    p = ws.inside(path if Path(path).is_absolute() or str(path).startswith("training/") else ws.training / path)
    return config_to_form(load_config(p)), p.stem


def yaml_preview(values: Mapping[str, Any]) -> str:
    """The YAML ``save_config`` would write, or the error (as a YAML comment) when invalid."""
    try:
        return config_to_yaml(form_to_config(values))
    except (ConfigError, UserError) as exc:
        return f"# not valid yet:\n# {exc}\n"


def validate_form(ws: Workspace, values: Mapping[str, Any], gpus_available: int | None = None
                  ) -> tuple[str, "pd.DataFrame", list]:
    """What the run will do: (Markdown report, LR curve frame, plan warnings)."""
    import pandas as pd

    from modules.config.plan import plan_run

    config = form_to_config(values)
    plan = plan_run(config, ws, gpus_available=gpus_available)
    lines = [
        "| | |", "|---|---|",
        f"| train / validation clips | {plan.train_items} / {plan.validation_items} |",
        f"| steps per epoch | {plan.steps_per_epoch} |",
        f"| total steps | {plan.total_steps} ({plan.epochs_run:.2f} epochs) |",
        f"| effective batch | {plan.global_batch} (batch {config.batch_size} × accumulation "
        f"{config.grad_accumulation} × {plan.world_size} process{'es' if plan.world_size > 1 else ''}) |",
    ]
    if plan.warnings:
        lines.append("")
        for w in plan.warnings:
            icon = "❌" if w.level == "error" else "⚠️"
            key = f"`{w.key}`: " if w.key else ""
            lines.append(f"- {icon} {key}{w.message} **Fix:** {w.fix}")
    else:
        lines.append("\n✅ No warnings.")
    frame = pd.DataFrame(plan.lr_points or [], columns=["step", "learning rate"])
    return "\n".join(lines), frame, plan.warnings


def auto_config_name(model: str, dataset: str | None) -> str:
    """The config name the form suggests until the user types one: DATASET-MODEL."""
    name = Path(dataset).name if dataset else ""
    return f"{name}-{model}" if name and name not in (".", "..") else model


def auto_form(ws: Workspace, values: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The form with settings derived from the dataset and the hardware, and one line per derived value."""
    from modules.config.auto import apply, derive

    config = form_to_config(values)
    derived = derive(config, ws)
    new = config_to_form(apply(config, derived))
    new["dataset"] = values.get("dataset") or new.get("dataset")
    lines = ["**Derived settings** (edit any of them; Validate shows the plan):", ""]
    lines += [f"- `{d.key}` = `{d.value}`: {d.why}" for d in derived]
    return new, "\n".join(lines)


def base_fixed_values(ws: Workspace, model: str, base: str | None) -> dict[str, Any]:
    """Dotted keys a base checkpoint fixes, with the base's values as the widgets show them ({} without a
    base, or when the base cannot be read: Validate reports that)."""
    from modules.model_spec import load_ref

    spec = registry.get(model) if model in registry.SPECS else None
    if not base or spec is None or not spec.base_values:
        return {}
    try:
        values = load_ref(spec.base_values)(Path(base), ws.root)
    except Exception:  # noqa: BLE001 - an unreadable base is Validate's message, not the form's
        return {}
    fields = {f.key: f for f in form_fields()}
    return {f"{model}.{k}": value_to_widget(fields[f"{model}.{k}"], v) for k, v in values.items()
            if f"{model}.{k}" in fields}


def fit_form(ws: Workspace, values: Mapping[str, Any]) -> str:
    """Will the batch fit (``modules.trainer.fit``): a dry run on a GPU, an estimate on the CPU."""
    from modules.trainer.fit import fit_check

    result = fit_check(form_to_config(values), ws)
    icon = "✅" if result.fits else "❌"
    return f"{icon} {result.message}"


def dataset_choices(ws: Workspace) -> list[str]:
    return [f"training/{name}" for name in ws.list_datasets()]


def base_choices(ws: Workspace, model: str) -> list[tuple[str, str]]:
    from modules.run_manager import list_base_models

    return [("none (start from random weights)", "")] + [(p, p) for p in list_base_models(ws, model)]


def saved_config_choices(ws: Workspace) -> list[str]:
    from modules.run_manager import config_label, list_configs

    return [config_label(ws, p) for p in list_configs(ws)]


# --------------------------------------------------------------------------------------------
# Gradio wiring
# --------------------------------------------------------------------------------------------
